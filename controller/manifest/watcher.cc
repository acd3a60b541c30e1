#include "controller/manifest/watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "common/log.h"

namespace zm::manifest {

namespace {
// After the last write of a burst is closed: long enough to coalesce a rename-into-place or a ConfigMap's symlink
// swap (a few events within microseconds), short enough not to delay a policy change.
constexpr std::chrono::milliseconds kSettle{5};
constexpr size_t kMaxTracked = 4096;  // names with an open write; beyond that, the full debounce applies anyway
}  // namespace

DirWatcher::DirWatcher(std::string dir, Callback on_change, std::chrono::milliseconds debounce,
                       std::chrono::milliseconds rescan)
    : dir_(std::move(dir)), on_change_(std::move(on_change)), debounce_(debounce), rescan_(rescan) {}

DirWatcher::~DirWatcher() {
  Stop();
}

bool DirWatcher::AddWatch() {
  constexpr uint32_t kMask = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
  wd_ = inotify_add_watch(inotify_fd_, dir_.c_str(), kMask);
  return wd_ >= 0;
}

bool DirWatcher::Start(std::string* error) {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_fd_ < 0 || stop_fd_ < 0) {
    *error = std::string("inotify: ") + std::strerror(errno);
    return false;
  }
  if (!AddWatch()) {
    // Not fatal: the directory may appear later; Run() retries.
    log::Warn("cannot watch manifest directory yet", {{"dir", dir_}, {"error", std::strerror(errno)}});
  }
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void DirWatcher::Stop() {
  if (running_.exchange(false)) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  inotify_fd_ = stop_fd_ = -1;
}

void DirWatcher::Run() {
  using Clock = std::chrono::steady_clock;
  bool pending = false;
  // Files with a write under way (created or modified, not yet closed): while there are any, a burst is only over
  // after the full debounce; once every write is closed (or renamed into place, deleted) a short settle suffices.
  std::set<std::string> writing;
  auto settle = [&] { return writing.empty() ? std::min(debounce_, kSettle) : debounce_; };
  auto last_event = Clock::now();
  auto last_scan = Clock::now();
  alignas(inotify_event) char buf[8192];
  while (running_) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int timeout_ms = pending ? static_cast<int>(settle().count()) : 1000;
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      ssize_t len;
      while ((len = ::read(inotify_fd_, buf, sizeof(buf))) > 0) {
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) wd_ = -1;  // dir gone: re-add below
          if (ev->len > 0 && !(ev->mask & IN_ISDIR)) {
            std::string name(ev->name);
            if (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
              writing.erase(name);
            } else if ((ev->mask & (IN_CREATE | IN_MODIFY)) && writing.size() < kMaxTracked) {
              writing.insert(std::move(name));
            }
          }
          p += sizeof(inotify_event) + ev->len;
        }
      }
      pending = true;
      last_event = Clock::now();
      continue;
    }
    auto now = Clock::now();
    if (wd_ < 0 && AddWatch()) {
      pending = true;  // directory (re)appeared
      last_event = now - debounce_;
      if (on_restart_) on_restart_();
    }
    if (wd_ < 0) writing.clear();
    if (pending && now - last_event >= settle()) {
      pending = false;
      writing.clear();  // a writer that keeps its file open past the debounce is read as it is (as before)
      last_scan = now;
      on_change_();
    } else if (!pending && now - last_scan >= rescan_) {
      last_scan = now;
      on_change_();
    }
  }
}

}  // namespace zm::manifest
