#include "agent/bpf/pin_dir.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/log.h"

namespace zm::agent::bpf {
namespace {

std::vector<std::string> ListDir(const std::string& dir, int* err) {
  std::vector<std::string> names;
  *err = 0;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    *err = errno;
    return names;
  }
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}

}  // namespace

bool ValidAgentId(std::string_view id) {
  if (id.empty() || id.size() > 64 || id == "." || id == "..") return false;
  for (char c : id) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Status EnsureBpffsDir(const std::string& path) {
  if (path.empty() || path[0] != '/') return Status::Error("pin path must be absolute: '" + path + "'");
  std::string cur;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    cur = path.substr(0, next);
    pos = next + 1;
    if (cur.empty() || cur.back() == '/') continue;
    if (mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return Status::Errno("mkdir " + cur, errno);
  }
  struct statfs fs {};
  if (statfs(path.c_str(), &fs) != 0) return Status::Errno("statfs " + path, errno);
  if (static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC) {
    return Status::Error(path + " is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)");
  }
  return Status::Ok();
}

Status PurgePinDir(const std::string& dir) {
  std::string first_error;
  auto note = [&](const Status& s) {
    if (!s.ok() && first_error.empty()) first_error = s.message();
  };
  int err = 0;
  for (const char* sub : {"/links", "/links-egress"}) {
    const std::string links = dir + sub;
    for (const auto& name : ListDir(links, &err)) {
      std::string path = links + "/" + name;
      int fd = bpf_obj_get(path.c_str());
      if (fd >= 0) {
        // A link of a deleted interface is already defunct; detaching it then fails harmlessly.
        if (bpf_link_detach(fd) != 0 && errno != ENOLINK && errno != EINVAL && errno != ENODEV) {
          zm::log::Warn("bpf link detach failed", {{"pin", path}, {"errno", errno}});
        }
        close(fd);
      }
      if (unlink(path.c_str()) != 0 && errno != ENOENT) note(Status::Errno("unlink " + path, errno));
    }
    if (rmdir(links.c_str()) != 0 && errno != ENOENT) note(Status::Errno("rmdir " + links, errno));
  }
  auto entries = ListDir(dir, &err);
  if (err == ENOENT) return first_error.empty() ? Status::Ok() : Status::Error(first_error);
  for (const auto& name : entries) {
    std::string path = dir + "/" + name;
    if (unlink(path.c_str()) != 0 && errno != ENOENT) note(Status::Errno("unlink " + path, errno));
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) note(Status::Errno("rmdir " + dir, errno));
  // The shared parent (e.g. /sys/fs/bpf/zeromesh) goes once the last agent id is gone.
  auto slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) rmdir(dir.substr(0, slash).c_str());
  return first_error.empty() ? Status::Ok() : Status::Error(first_error);
}

}  // namespace zm::agent::bpf
