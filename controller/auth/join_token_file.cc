#include "controller/auth/join_token_file.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/log.h"

namespace zm::ctrl {
namespace {

// Plaintext entries work but sit readable in the file: say so on every load that has them.
void WarnPlaintext(const std::string& path, const JoinTokens& t) {
  if (t.plaintext_count() == 0) return;
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& i : t.Describe()) {
    if (i.plaintext) nodes.push_back(i.node);
  }
  log::Warn(
      "join-token file holds plaintext tokens: replace each with its hashed entry "
      "(meshctl join-token create NODE prints a new token and the line)",
      {{"path", path}, {"nodes", nodes}});
}

}  // namespace

std::unique_ptr<JoinTokenFile> JoinTokenFile::Open(const std::string& path, std::string* error) {
  std::unique_ptr<JoinTokenFile> f(new JoinTokenFile());
  f->path_ = path;
  FileId id;
  if (!f->Stat(&id, error) || !f->LoadFile(error)) return nullptr;
  f->seen_ = id;
  return f;
}

JoinTokenFile::~JoinTokenFile() {
  Stop();
}

bool JoinTokenFile::Stat(FileId* id, std::string* error) const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    *error = path_ + ": " + std::strerror(errno);
    return false;
  }
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  id->size = st.st_size;
  id->mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  id->ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  return true;
}

bool JoinTokenFile::LoadFile(std::string* error) {
  auto next = JoinTokens::Load(path_, error);
  if (!next) return false;
  WarnPlaintext(path_, *next);
  auto shared = std::make_shared<const JoinTokens>(std::move(*next));
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(shared);
  last_error_.clear();
  return true;
}

bool JoinTokenFile::Reload() {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  FileId id;
  std::string error;
  bool changed = Stat(&id, &error);
  if (changed && id == seen_) return false;
  if (changed) {
    // Remembered even if the new version is bad: it is reported once, and re-read only when it changes again.
    seen_ = id;
    changed = LoadFile(&error);
  } else {
    seen_ = FileId{};  // gone: whatever appears at the path next is new
  }
  if (changed) {
    auto now = Describe();
    log::Info("join-token file reloaded", {{"path", path_}, {"nodes", now.size()}});
    return true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (error != last_error_) {
    log::Error("join-token file rejected; the last good tokens stay in force", {{"path", path_}, {"error", error}});
    last_error_ = error;
  }
  return false;
}

JoinTokenMatch JoinTokenFile::Match(std::string_view token) const {
  return Match(token, static_cast<int64_t>(std::time(nullptr)));
}

JoinTokenMatch JoinTokenFile::Match(std::string_view token, int64_t now_unix) const {
  std::shared_ptr<const JoinTokens> t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = current_;
  }
  return t->Match(token, now_unix);
}

std::vector<JoinTokenInfo> JoinTokenFile::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_->Describe();
}

std::string JoinTokenFile::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void JoinTokenFile::Watch(std::chrono::milliseconds interval) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, interval);
      if (stop_) break;
      lock.unlock();
      Reload();
      lock.lock();
    }
  });
}

void JoinTokenFile::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace zm::ctrl
