#include "agent/proxy/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <system_error>

namespace zm::proxy {

EventLoop::EventLoop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr = the wake fd
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

EventLoop::~EventLoop() {
  RunGarbage();
  close(wakefd_);
  close(epfd_);
}

bool EventLoop::Add(int fd, uint32_t events, IoHandler* h) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventLoop::Remove(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

uint64_t EventLoop::AddTimer(Clock::duration after, std::function<void()> cb) {
  uint64_t id = next_timer_++;
  auto when = Clock::now() + after;
  timers_.emplace(std::make_pair(when, id), std::move(cb));
  timer_index_.emplace(id, when);
  return id;
}

void EventLoop::CancelTimer(uint64_t id) {
  auto it = timer_index_.find(id);
  if (it == timer_index_.end()) return;
  timers_.erase({it->second, id});
  timer_index_.erase(it);
}

void EventLoop::RunGarbage() {
  // A destructor may queue more garbage: swap first so the vector never reallocates under a running callback.
  while (!garbage_.empty()) {
    std::vector<std::function<void()>> g;
    g.swap(garbage_);
    for (auto& f : g) f();
  }
}

void EventLoop::MarkReady(IoHandler* h) {
  ready_.push_back(h);
}

void EventLoop::Unready(IoHandler* h) {
  std::replace(ready_.begin(), ready_.end(), h, static_cast<IoHandler*>(nullptr));
}

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(post_mu_);
    posted_.push_back(std::move(fn));
  }
  Wake();
}

void EventLoop::Stop() {
  stop_requested_ = true;
  Wake();
}

void EventLoop::Wake() {
  uint64_t one = 1;
  ssize_t r = write(wakefd_, &one, sizeof(one));
  (void)r;  // EAGAIN means a wake-up is already pending
}

EventLoop::Clock::duration EventLoop::RunTimers() {
  auto now = Clock::now();
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    timer_index_.erase(node.key().second);
    node.mapped()();
  }
  if (timers_.empty()) return std::chrono::seconds(1);
  return timers_.begin()->first.first - now;
}

void EventLoop::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  std::vector<IoHandler*> ready;
  std::vector<std::function<void()>> posted;
  while (!stop_) {
    auto wait = RunTimers();
    int timeout_ms = 0;
    if (ready_.empty()) {
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, 1000));
    }
    int n = epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<IoHandler*>(events[i].data.ptr);
      if (h == nullptr) {
        uint64_t v;
        while (read(wakefd_, &v, sizeof(v)) > 0) {
        }
        continue;
      }
      h->OnIo(events[i].events);
    }
    ready.swap(ready_);
    for (IoHandler* h : ready) {
      if (h != nullptr) h->OnReady();
    }
    ready.clear();
    {
      std::lock_guard<std::mutex> l(post_mu_);
      posted.swap(posted_);
    }
    for (auto& fn : posted) fn();
    posted.clear();
    RunGarbage();
    if (stop_requested_) stop_ = true;
  }
}

}  // namespace zm::proxy
