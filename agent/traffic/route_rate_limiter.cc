#include "agent/traffic/route_rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace zm::traffic {

void TokenBucket::Refill(Clock::time_point now) {
  if (now <= last_) return;  // time never runs backwards for a bucket (a worker's older clock read)
  tokens_ = std::min(capacity_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
  last_ = now;
}

bool TokenBucket::Take(Clock::time_point now, uint32_t* retry_after_s) {
  Refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  // Seconds until the bucket holds a whole token again, rounded up (Retry-After counts whole seconds).
  double wait = rate_ > 0 ? (1.0 - tokens_) / rate_ : 3600.0;
  *retry_after_s = static_cast<uint32_t>(std::clamp(std::ceil(wait - 1e-9), 1.0, 3600.0));
  return false;
}

bool TokenBucket::Full(Clock::time_point now) const {
  double t = tokens_;
  if (now > last_) t += std::chrono::duration<double>(now - last_).count() * rate_;
  return t >= capacity_;
}

RouteRateLimiter::Verdict RouteRateLimiter::Take(const agent::HttpRouteRule& rule, const std::string& source,
                                                 Clock::time_point now) {
  return Take(rule.rate_limit, rule.key, source, now);
}

RouteRateLimiter::Verdict RouteRateLimiter::Take(const agent::HttpRateLimitPolicy& p, const std::string& base,
                                                 const std::string& source, Clock::time_point now) {
  if (!p.enabled()) return {};
  const uint32_t burst = std::max<uint32_t>(1, p.burst);
  std::string key = p.per_source ? base + "|" + source : base;
  std::lock_guard l(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxBuckets) {
      std::erase_if(buckets_, [now](const auto& kv) { return kv.second.bucket.Full(now); });
      if (buckets_.size() >= kMaxBuckets) key = base + "|other";  // sources past the bound share a bucket
    }
    it = buckets_.try_emplace(std::move(key)).first;
  }
  Entry& e = it->second;
  if (e.requests != p.requests || e.burst != burst || e.interval_ms != p.interval.count()) {
    // New or changed limit: a full bucket at the new rate.
    e.requests = p.requests;
    e.burst = burst;
    e.interval_ms = p.interval.count();
    double rate = static_cast<double>(p.requests) * 1000.0 / static_cast<double>(p.interval.count());
    e.bucket = TokenBucket(burst, rate, now);
  }
  Verdict v;
  v.allowed = e.bucket.Take(now, &v.retry_after_s);
  if (!v.allowed) rejections_.fetch_add(1, std::memory_order_relaxed);
  return v;
}

size_t RouteRateLimiter::buckets() const {
  std::lock_guard l(mu_);
  return buckets_.size();
}

}  // namespace zm::traffic
