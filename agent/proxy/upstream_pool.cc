#include "agent/proxy/upstream_pool.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace zm::proxy {
namespace {

constexpr auto kSweepEvery = std::chrono::seconds(1);

// Nothing to read and not closed: the stream can carry a request. Bytes waiting (a late or unsolicited response) or
// an end of stream mean it cannot.
bool Healthy(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

UpstreamPool::~UpstreamPool() {
  loop_.CancelTimer(sweep_timer_);
  for (auto& [key, q] : idle_by_key_) {
    for (Entry* e : q) {
      loop_.Remove(e->fd);
      close(e->fd);
      delete e;  // the loop is not dispatching: the worker is being torn down
    }
  }
}

int UpstreamPool::Take(const UpstreamKey& key) {
  auto it = idle_by_key_.find(key);
  while (it != idle_by_key_.end() && !it->second.empty()) {
    Entry* e = it->second.back();  // the most recently used: the least likely to have been closed meanwhile
    it->second.pop_back();
    --idle_;
    loop_.Remove(e->fd);
    int fd = e->fd;
    loop_.DeleteLater(e);  // its events may be in the loop's current batch
    if (Healthy(fd)) {
      if (it->second.empty()) idle_by_key_.erase(it);
      ProxyStats::Add(stats_.http_upstream_reused);
      return fd;
    }
    close(fd);
  }
  if (it != idle_by_key_.end() && it->second.empty()) idle_by_key_.erase(it);
  return -1;
}

void UpstreamPool::Put(const UpstreamKey& key, int fd, std::chrono::milliseconds idle_timeout) {
  auto& q = idle_by_key_[key];
  if (q.size() >= kMaxIdlePerKey || !Healthy(fd)) {
    close(fd);
    if (q.empty()) idle_by_key_.erase(key);
    return;
  }
  auto* e = new Entry;
  e->pool = this;
  e->key = key;
  e->fd = fd;
  e->expires = EventLoop::Clock::now() + (idle_timeout.count() > 0 ? idle_timeout : kDefaultIdleTimeout);
  if (!loop_.Add(fd, EPOLLIN | EPOLLRDHUP | EPOLLET, e)) {
    close(fd);
    delete e;
    if (q.empty()) idle_by_key_.erase(key);
    return;
  }
  q.push_back(e);
  ++idle_;
  Arm();
}

void UpstreamPool::Discard(Entry* e) {
  auto it = idle_by_key_.find(e->key);
  if (it == idle_by_key_.end()) return;
  auto pos = std::find(it->second.begin(), it->second.end(), e);
  if (pos == it->second.end()) return;  // taken already
  it->second.erase(pos);
  if (it->second.empty()) idle_by_key_.erase(it);
  --idle_;
  loop_.Remove(e->fd);
  close(e->fd);
  loop_.DeleteLater(e);
}

void UpstreamPool::Sweep() {
  sweep_timer_ = 0;
  Expire(EventLoop::Clock::now());
  Arm();
}

void UpstreamPool::Expire(EventLoop::Clock::time_point now) {
  std::vector<Entry*> expired;
  for (auto& [key, q] : idle_by_key_) {
    for (Entry* e : q) {
      if (e->expires <= now) expired.push_back(e);
    }
  }
  for (Entry* e : expired) Discard(e);
}

void UpstreamPool::Arm() {
  if (sweep_timer_ != 0 || idle_ == 0) return;
  sweep_timer_ = loop_.AddTimer(kSweepEvery, [this] { Sweep(); });
}

}  // namespace zm::proxy
