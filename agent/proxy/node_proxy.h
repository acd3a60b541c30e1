// The node proxy of mesh-agent: owns the three transparent listeners (and their three IPv6 twins on a node with IPv6)
// and N worker threads.
//   outbound  (15001): connections captured from enrolled local pods -> HBONE / same-node / passthrough
//   hbone     (15008): mTLS + HTTP/2 CONNECT from other nodes' proxies -> local pods
//   plaintext (15006): plaintext captured for enrolled local pods -> refused (STRICT) or relayed (PERMISSIVE)
// The listener fds are exposed so the agent can put them into the BPF SOCKMAP (IPv4) and zm_listeners6 (IPv6).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/proxy/options.h"
#include "agent/proxy/peer_limit.h"
#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"
#include "agent/traffic/balancer.h"
#include "agent/traffic/rate_limiter.h"

namespace zm::proxy {

class Worker;

class NodeProxy {
 public:
  NodeProxy(ProxyOptions opts, agent::SnapshotHolder& snapshots, agent::CertStore& certs);
  ~NodeProxy();
  NodeProxy(const NodeProxy&) = delete;
  NodeProxy& operator=(const NodeProxy&) = delete;

  // Creates the listeners and starts the workers. Also ignores SIGPIPE and raises RLIMIT_NOFILE (process-wide).
  bool Start(std::string* error);
  void Stop();   // closes every connection and the listeners; idempotent
  void Drain();  // every open HBONE session from a peer is told (GOAWAY) to open no new stream here

  int outbound_fd() const { return fds_[0]; }
  int hbone_fd() const { return fds_[1]; }
  int plaintext_fd() const { return fds_[2]; }
  // -1 when the node has no IPv6 (or ProxyOptions::listen_addr6 is unset).
  int outbound6_fd() const { return fds_[3]; }
  int hbone6_fd() const { return fds_[4]; }
  int plaintext6_fd() const { return fds_[5]; }
  bool has_ipv6() const { return fds_[3] >= 0; }
  uint16_t outbound_port() const { return ports_[0]; }
  uint16_t hbone_port() const { return ports_[1]; }
  uint16_t plaintext_port() const { return ports_[2]; }
  uint16_t outbound6_port() const { return ports_[3]; }  // 0 without IPv6
  uint16_t hbone6_port() const { return ports_[4]; }
  uint16_t plaintext6_port() const { return ports_[5]; }
  const ProxyStats& stats() const { return stats_; }
  traffic::Balancer& balancer() { return balancer_; }
  traffic::RateLimiter& limiter() { return limiter_; }

 private:
  ProxyOptions opts_;
  agent::SnapshotHolder& snapshots_;
  agent::CertStore& certs_;
  ProxyStats stats_;
  traffic::Balancer balancer_;
  traffic::RateLimiter limiter_;
  PeerLimit peers_;
  bool StartIpv6Listeners(std::string* error);  // false only for an error other than "no IPv6 here"

  int fds_[6] = {-1, -1, -1, -1, -1, -1};  // as Worker's listener_fds: IPv4 outbound, HBONE, plaintext, then IPv6
  uint16_t ports_[6] = {0, 0, 0, 0, 0, 0};
  int subscription_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace zm::proxy
