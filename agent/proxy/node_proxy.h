// The node proxy of mesh-agent: owns the three transparent listeners and N worker threads.
//   outbound  (15001): connections captured from enrolled local pods -> HBONE / same-node / passthrough
//   hbone     (15008): mTLS + HTTP/2 CONNECT from other nodes' proxies -> local pods
//   plaintext (15006): plaintext captured for enrolled local pods -> refused (STRICT) or relayed (PERMISSIVE)
// The listener fds are exposed so the agent can put them into the BPF SOCKMAP.
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
  uint16_t outbound_port() const { return ports_[0]; }
  uint16_t hbone_port() const { return ports_[1]; }
  uint16_t plaintext_port() const { return ports_[2]; }
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
  int fds_[3] = {-1, -1, -1};
  uint16_t ports_[3] = {0, 0, 0};
  int subscription_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace zm::proxy
