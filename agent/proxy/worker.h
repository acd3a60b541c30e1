// A proxy worker: one thread, one event loop, its own HBONE pool. All workers share the three listeners
// (EPOLLEXCLUSIVE) and route each accepted connection by the mesh snapshot current at accept time.
#pragma once

#include <netinet/in.h>

#include <memory>
#include <thread>
#include <vector>

#include "agent/proxy/hbone_client.h"
#include "agent/proxy/worker_context.h"

namespace zm::proxy {

enum class ListenerKind { kOutbound = 0, kHbone = 1, kPlaintext = 2 };

class Worker {
 public:
  Worker(const ProxyOptions& opts, ProxyStats& stats, agent::SnapshotHolder& snaps, agent::CertStore& certs,
         const int listener_fds[3]);
  ~Worker();
  void Start();
  void Stop();               // thread-safe; joins
  void OnSnapshotChanged();  // thread-safe

 private:
  struct Listener : IoHandler {
    Worker* worker;
    ListenerKind kind;
    int fd;
    void OnIo(uint32_t) override { worker->Accept(*this); }
  };
  struct Held {
    int fd;
    sockaddr_in src, dst;
    EventLoop::Clock::time_point deadline;
  };

  void Accept(Listener& l);
  void Outbound(int fd, const sockaddr_in& src, const sockaddr_in& dst, bool hold_expired);
  void Inbound(int fd, const sockaddr_in& src, const sockaddr_in& dst);
  void Plaintext(int fd, const sockaddr_in& src, const sockaddr_in& dst);
  void Relay(int downstream, const sockaddr_in& src, const sockaddr_in& dst, const char* what);
  void Refuse(int fd, const char* what, const sockaddr_in& src, const sockaddr_in& dst, const std::string& why);
  void RecheckHeld(bool timer);
  void Shutdown();

  WorkerContext ctx_;
  HbonePool pool_;
  Listener listeners_[3];
  std::vector<Held> held_;
  uint64_t held_timer_ = 0;
  std::thread thread_;
};

}  // namespace zm::proxy
