// One epoll event loop per worker thread. Handlers are registered edge-triggered and keep their own readiness flags.
// Objects are never deleted while the loop may still dispatch to them: DeleteLater() runs after the current round.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace zm::proxy {

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void OnIo(uint32_t events) = 0;
  // Called once per MarkReady(), in the next round (used to yield after a work budget).
  virtual void OnReady() {}
};

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  bool Add(int fd, uint32_t events, IoHandler* h);
  void Remove(int fd);

  uint64_t AddTimer(Clock::duration after, std::function<void()> cb);
  void CancelTimer(uint64_t id);  // no-op for 0 or an expired timer

  void MarkReady(IoHandler* h);
  void Unready(IoHandler* h);  // handlers call this from their destructor

  template <typename T>
  void DeleteLater(T* p) {
    garbage_.push_back([p] { delete p; });
  }

  // Thread-safe: runs |fn| on the loop thread.
  void Post(std::function<void()> fn);
  void Run();
  void Stop();  // thread-safe
  // Deletes what DeleteLater() queued; the owner calls it after a last teardown outside Run().
  void RunGarbage();
  bool stopping() const { return stop_; }

 private:
  void Wake();
  Clock::duration RunTimers();

  int epfd_ = -1;
  int wakefd_ = -1;
  bool stop_ = false;
  uint64_t next_timer_ = 1;
  std::map<std::pair<Clock::time_point, uint64_t>, std::function<void()>> timers_;
  std::map<uint64_t, Clock::time_point> timer_index_;
  std::vector<IoHandler*> ready_;
  std::vector<std::function<void()>> garbage_;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace zm::proxy
