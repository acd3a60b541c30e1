// A proxy worker: one thread, one event loop, its own HBONE pool. All workers share the listeners (three IPv4, and
// three IPv6 on a node with IPv6; EPOLLEXCLUSIVE) and route each accepted connection by the mesh snapshot current at
// accept time, whatever its family. An accepted outbound or HBONE connection goes to the least loaded worker (by
// HBONE sessions and streams), so bulk streams that arrive together do not all land on the first worker to wake.
#pragma once

#include <netinet/in.h>

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "agent/proxy/destination_l7.h"
#include "agent/proxy/hbone_client.h"
#include "agent/proxy/upstream_pool.h"
#include "agent/proxy/worker_context.h"

namespace zm::proxy {

enum class ListenerKind { kOutbound = 0, kHbone = 1, kPlaintext = 2 };
// Listener fds: outbound, HBONE, plaintext over IPv4, then the same over IPv6 (-1: absent).
inline constexpr int kListenerCount = 6;

class Worker {
 public:
  Worker(const ProxyOptions& opts, ProxyStats& stats, agent::SnapshotHolder& snaps, agent::CertStore& certs,
         const int listener_fds[kListenerCount], traffic::Balancer* balancer, traffic::RateLimiter* limiter,
         PeerLimit* peers = nullptr);
  ~Worker();
  // Every worker of the proxy (this one included), before Start(): Accept hands connections to the least loaded.
  void SetSiblings(std::vector<Worker*> all) { siblings_ = std::move(all); }
  void Start();
  void Stop();               // thread-safe; joins
  void Drain();              // thread-safe: tells every open connection the agent is draining (Closable::Drain)
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
    net::SockAddr src, dst;
    EventLoop::Clock::time_point deadline;
    bool inbound;  // an HBONE connection waiting for its destination, else an outbound one waiting for its source
  };

  void Accept(Listener& l);
  void Dispatch(ListenerKind kind, int fd, const net::SockAddr& src, const net::SockAddr& dst);
  // The sibling to hand a new outbound or HBONE connection to, or this worker when it is not busier than the others
  // by kHandOffMargin.
  Worker* PickWorker();
  void HandOff(Worker* to, ListenerKind kind, int fd, const net::SockAddr& src, const net::SockAddr& dst);
  void Outbound(int fd, const net::SockAddr& src, const net::SockAddr& dst, bool hold_expired);
  void Inbound(int fd, const net::SockAddr& src, const net::SockAddr& dst, bool hold_expired);
  void Plaintext(int fd, const net::SockAddr& src, const net::SockAddr& dst);
  void Relay(int downstream, const net::SockAddr& src, const net::SockAddr& dst, const char* what,
             const agent::MeshSnapshot* snap, bool same_node = false, ServiceConn svc = {});
  // Like Relay to a local pod's HTTP port, through handler |l7| (DestinationL7For): each request is parsed (golden
  // metrics, tracing) and, with |enforce| (AuthzDecision::per_request), decided by TrafficPermission http rules.
  // |src_id|: nullptr for a plaintext client.
  void RelayHttp(int downstream, const net::SockAddr& src, const net::SockAddr& dst, const char* what,
                 std::shared_ptr<const agent::MeshSnapshot> snap, const tls::SpiffeId* src_id, bool enforce,
                 DestinationL7 l7);
  // A connection to a Service VIP (|attempt| says which Service, what was tried): picks a backend and an endpoint and
  // relays to it the way a connection to that endpoint would go (same node, HBONE, or direct).
  struct ServiceAttempt {
    std::shared_ptr<const agent::MeshSnapshot> snap;
    net::SockAddr src{};
    net::SockAddr vip{};
    bool source_in_mesh = false;              // enrolled local source: mesh endpoints go through HBONE/same-node
    const agent::Service* backend = nullptr;  // set on retries: the backend the first attempt chose
    uint16_t backend_port = 0;
    std::vector<net::IpAddr> tried;
    uint32_t retries_left = 0;
    bool first = true;
  };
  static ServiceAttempt NewAttempt(std::shared_ptr<const agent::MeshSnapshot> snap, const net::SockAddr& src,
                                   const net::SockAddr& vip, bool source_in_mesh);
  void ToService(int fd, ServiceAttempt a);
  // A connection to an HTTP port of |svc|: routed per request by an Http1Conn, or per stream by an H2Conn (|h2|: an
  // h2c or gRPC port).
  void ToHttpService(int fd, ServiceAttempt a, const agent::Service* svc, bool h2);
  // Sends |fd| to the picked endpoint |ep| as a connection to it would go: same-node relay (after policy and rate
  // limit), HBONE to its node with the source's identity, or direct when either side is outside the mesh.
  void Deliver(int fd, const ServiceAttempt& a, const net::SockAddr& ep, ServiceConn sc);
  // |denied_by| set: a policy denial (the policy's name), otherwise an error.
  void Refuse(int fd, const char* what, const net::SockAddr& src, const net::SockAddr& dst, const std::string& why,
              std::optional<std::string> denied_by = std::nullopt);
  // What the observer is told about a connection (addresses, workloads and the identities each side carries).
  ConnRecord Record(const agent::MeshSnapshot* snap, const char* flow, const net::SockAddr& src,
                    const net::SockAddr& dst) const;
  // Same-node delivery to |dst| counts against its Service's rate limit (this node is the destination): false when
  // the connection was refused for it.
  bool PassRateLimit(int fd, const agent::MeshSnapshot& snap, const net::SockAddr& src, const net::SockAddr& dst,
                     const tls::SpiffeId& src_id);
  // The source can be served: a local workload of the snapshot and, if enrolled, with its certificate issued.
  // Connections from other sources are held (Hold) until it can, or their deadline passes.
  bool SourceReady(const agent::MeshSnapshot* snap, const net::IpAddr& src) const;
  // An HBONE connection can be answered: there is a configuration, and if it names |dst| as a local enrolled workload,
  // that workload's certificate is issued. A restarted agent holds what reaches it before both are in.
  bool DestinationReady(const agent::MeshSnapshot* snap, const net::IpAddr& dst) const;
  void Hold(int fd, const net::SockAddr& src, const net::SockAddr& dst, bool inbound);
  // Refuses a connection over one of the proxy's bounds (RST), counted in |counter|; logged at most every few
  // seconds per worker, with how many were shed since, so a flood does not become a flood of log lines.
  void Shed(int fd, const char* what, const net::SockAddr& src, const net::SockAddr& dst, const char* why,
            std::atomic<uint64_t>& counter);
  void Release(const Held& h);  // decides a held connection now (served, or refused if it still cannot be)
  void ArmHeldTimer();          // the periodic recheck, unless it is already pending
  void RecheckHeld();
  void Shutdown();

  WorkerContext ctx_;
  HbonePool pool_;
  UpstreamPool upstreams_;
  Listener listeners_[kListenerCount];
  std::vector<Held> held_;
  uint64_t held_timer_ = 0;
  EventLoop::Clock::time_point last_shed_log_{};
  uint64_t shed_since_log_ = 0;
  std::vector<Worker*> siblings_;
  std::thread thread_;
};

}  // namespace zm::proxy
