// Token buckets for new connections, enforced where the connection arrives at its destination node (HBONE server,
// same-node delivery): one bucket per destination Service, or per {Service, source identity} when the ServicePolicy
// asks for it. Buckets refill continuously at `rate` up to `burst`; a changed policy restarts its buckets full.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "agent/state/mesh_snapshot.h"
#include "agent/traffic/route_rate_limiter.h"

namespace zm::traffic {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // The rate-limited Service that endpoint |ip|:|port| (target port) belongs to, or nullptr.
  static const agent::Service* LimitedServiceOf(const agent::MeshSnapshot& snap, const net::IpAddr& ip, uint16_t port);

  // Takes one token for a new connection to |svc| from |source| (a SPIFFE ID, "" for none). False: refuse it.
  bool Allow(const agent::Service& svc, const std::string& source, Clock::time_point now = Clock::now());

  uint64_t rejections(const std::string& service_key) const;
  uint64_t total_rejections() const { return total_.load(std::memory_order_relaxed); }

  // The per-request limits of route rules (ServicePolicy spec.http.rateLimit), shared by the workers the same way.
  RouteRateLimiter& routes() { return routes_; }
  const RouteRateLimiter& routes() const { return routes_; }

 private:
  struct Bucket {
    double rate = 0;
    uint32_t burst = 0;
    double tokens = 0;
    Clock::time_point last{};
  };

  mutable std::mutex mu_;
  std::map<std::string, Bucket> buckets_;       // service key [+ "|" + source]
  std::map<std::string, uint64_t> rejections_;  // by service key
  std::atomic<uint64_t> total_{0};
  RouteRateLimiter routes_;
};

}  // namespace zm::traffic
