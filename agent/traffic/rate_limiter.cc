#include "agent/traffic/rate_limiter.h"

#include <algorithm>

namespace zm::traffic {

const agent::Service* RateLimiter::LimitedServiceOf(const agent::MeshSnapshot& snap, const net::IpAddr& ip,
                                                    uint16_t port) {
  for (const auto& s : snap.services()) {
    if (s.policy.rate_limit_per_second <= 0) continue;
    bool port_ok = false;
    for (const auto& p : s.ports) port_ok = port_ok || p.target_port == port;
    if (!port_ok) continue;
    for (const auto& e : s.endpoints) {
      if (e.ip == ip) return &s;
    }
  }
  return nullptr;
}

bool RateLimiter::Allow(const agent::Service& svc, const std::string& source, Clock::time_point now) {
  const auto& pol = svc.policy;
  if (pol.rate_limit_per_second <= 0) return true;
  std::string key = svc.Key();
  std::string bucket_key = pol.rate_limit_per_source ? key + "|" + source : key;
  uint32_t burst = std::max<uint32_t>(1, pol.rate_limit_burst);
  std::lock_guard<std::mutex> l(mu_);
  Bucket& b = buckets_[bucket_key];
  if (b.rate != pol.rate_limit_per_second || b.burst != burst) {
    b = Bucket{pol.rate_limit_per_second, burst, static_cast<double>(burst), now};
  }
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  if (elapsed > 0) {
    b.tokens = std::min<double>(b.burst, b.tokens + elapsed * b.rate);
    b.last = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  ++rejections_[key];
  total_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

uint64_t RateLimiter::rejections(const std::string& service_key) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = rejections_.find(service_key);
  return it == rejections_.end() ? 0 : it->second;
}

}  // namespace zm::traffic
