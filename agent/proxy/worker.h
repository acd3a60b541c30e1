// A proxy worker: one thread, one event loop, its own HBONE pool. All workers share the three listeners
// (EPOLLEXCLUSIVE) and route each accepted connection by the mesh snapshot current at accept time.
#pragma once

#include <netinet/in.h>

#include <memory>
#include <optional>
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
  void Relay(int downstream, const sockaddr_in& src, const sockaddr_in& dst, const char* what,
             const agent::MeshSnapshot* snap, bool same_node = false);
  // |denied_by| set: a policy denial (the policy's name), otherwise an error.
  void Refuse(int fd, const char* what, const sockaddr_in& src, const sockaddr_in& dst, const std::string& why,
              std::optional<std::string> denied_by = std::nullopt);
  // What the observer is told about a connection (addresses, workloads and the identities each side carries).
  ConnRecord Record(const agent::MeshSnapshot* snap, const char* flow, const sockaddr_in& src,
                    const sockaddr_in& dst) const;
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
