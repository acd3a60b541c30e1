// Idle HTTP/1.1 upstream streams of one worker, shared by all its client connections (issue 17: requests go over
// pooled upstream connections). A stream is the socketpair end whose other end the worker handed to the L4 delivery
// (the HBONE tunnel carrying the source workload's certificate), so a stream is only ever reused for the same source
// (principal and address) and the same endpoint and protocol: the key. Bounded per key, closed after an idle timeout,
// and never handed out once the peer closed it or sent bytes nobody asked for.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <tuple>

#include "agent/proxy/event_loop.h"
#include "agent/proxy/options.h"
#include "common/net/ip_addr.h"

namespace zm::proxy {

struct UpstreamKey {
  std::string source;      // the source workload's principal and IP
  net::SockAddr endpoint;  // ip and port
  uint8_t protocol = 1;    // 1: HTTP/1.1
  bool operator<(const UpstreamKey& o) const {
    return std::tie(endpoint, protocol, source) < std::tie(o.endpoint, o.protocol, o.source);
  }
};

class UpstreamPool {
 public:
  static constexpr size_t kMaxIdlePerKey = 8;
  static constexpr std::chrono::milliseconds kDefaultIdleTimeout{60000};

  UpstreamPool(EventLoop& loop, ProxyStats& stats) : loop_(loop), stats_(stats) {}
  ~UpstreamPool();  // closes every idle stream (the worker is going away)
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A healthy idle stream for |key| (the caller owns it and registers it with the loop), or -1.
  int Take(const UpstreamKey& key);
  // |fd| (removed from the loop) ended its last exchange cleanly and may carry another request: the pool owns it.
  // |idle_timeout| 0: kDefaultIdleTimeout.
  void Put(const UpstreamKey& key, int fd, std::chrono::milliseconds idle_timeout);
  size_t idle() const { return idle_; }
  // Closes the streams idle past their timeout at |now| (the periodic sweep; tests call it with a later clock).
  void Expire(EventLoop::Clock::time_point now);

 private:
  struct Entry : IoHandler {
    UpstreamPool* pool = nullptr;
    UpstreamKey key;
    int fd = -1;
    EventLoop::Clock::time_point expires{};
    void OnIo(uint32_t) override { pool->Discard(this); }  // idle: any event is a close or bytes out of turn
  };
  void Discard(Entry* e);  // closes and forgets |e|
  void Sweep();            // Expire(now), then again later while any is idle
  void Arm();

  EventLoop& loop_;
  ProxyStats& stats_;
  std::map<UpstreamKey, std::deque<Entry*>> idle_by_key_;  // oldest first
  size_t idle_ = 0;
  uint64_t sweep_timer_ = 0;
};

}  // namespace zm::proxy
