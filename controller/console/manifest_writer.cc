#include "controller/console/manifest_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace zm::ctrl::console {
namespace {

bool WriteAtomically(const std::string& path, const std::string& content, std::string* error) {
  // A dot file: the controller's loader skips hidden files, so a half-written file is never read.
  const std::string dir = path.substr(0, path.rfind('/'));
  const std::string tmp = dir + "/.console-" + path.substr(path.rfind('/') + 1) + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "cannot write " + tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

std::string ReadManifest(const ManifestSink& sink, const std::string& file) {
  std::ifstream in(sink.dir + "/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

WriteResult WriteManifest(const ManifestSink& sink, const std::string& file, const std::string& content) {
  WriteResult r;
  if (sink.dir.empty() || file.empty() || file.find('/') != std::string::npos || file[0] == '.') {
    r.errors.push_back("no manifest directory to write " + file + " into");
    return r;
  }
  r.path = sink.dir + "/" + file;
  const bool existed = ::access(r.path.c_str(), F_OK) == 0;
  const std::string before = existed ? ReadManifest(sink, file) : "";
  std::string error;
  if (!WriteAtomically(r.path, content, &error)) {
    r.errors.push_back(error);
    return r;
  }
  sink.reload();
  r.errors = sink.errors_in(file);
  if (r.errors.empty()) {
    r.ok = true;
    return r;
  }
  // Refused: put the directory back as it was, so the next edit of anyone's starts from a clean state.
  if (existed) {
    WriteAtomically(r.path, before, &error);
  } else {
    ::unlink(r.path.c_str());
  }
  sink.reload();
  return r;
}

}  // namespace zm::ctrl::console
