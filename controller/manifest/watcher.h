// Watches a manifest directory with inotify and calls back once per burst of changes: `debounce` after the last
// event while a file is still being written, a few milliseconds once every write is closed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace zm::manifest {

class DirWatcher {
 public:
  using Callback = std::function<void()>;
  DirWatcher(std::string dir, Callback on_change, std::chrono::milliseconds debounce = std::chrono::milliseconds(50),
             std::chrono::milliseconds rescan = std::chrono::seconds(10));
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  // Called (on the watch thread) each time the watch is re-established after the directory went away. Set before Start.
  void OnRestart(Callback cb) { on_restart_ = std::move(cb); }
  // Starts the watch thread. The caller does the initial load itself.
  bool Start(std::string* error);
  void Stop();

 private:
  void Run();
  bool AddWatch();

  const std::string dir_;
  const Callback on_change_;
  Callback on_restart_;
  const std::chrono::milliseconds debounce_;
  const std::chrono::milliseconds rescan_;  // safety net for missed events (dir replaced, NFS, ...)
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  int wd_ = -1;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace zm::manifest
