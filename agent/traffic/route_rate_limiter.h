// Local rate limits per HTTPRoute / GRPCRoute rule (a ServicePolicy's spec.http.rateLimit), enforced by the source
// node proxy where the rule is matched: one token bucket per rule, or per {rule, source identity} with perSource,
// shared by every worker of the node (one mutex, a map lookup per limited request). The limit is per source node,
// as Envoy's local rate limit is per proxy instance. A refused request gets 429 with Retry-After. A Service's
// spec.http.rateLimit uses the same buckets on the destination node, keyed "<ns>/<service>@<pod IP>".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "agent/state/http_route.h"

namespace zm::traffic {

// Continuous refill at |rate| tokens per second up to |capacity|; starts full.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket() = default;
  TokenBucket(double capacity, double rate, Clock::time_point now)
      : capacity_(capacity), rate_(rate), tokens_(capacity), last_(now) {}

  // Takes one token. When none is left: false, and *retry_after_s = whole seconds until one will be (at least 1).
  bool Take(Clock::time_point now, uint32_t* retry_after_s);
  bool Full(Clock::time_point now) const;  // refilled to capacity by |now| (an idle bucket, safe to forget)
  double tokens() const { return tokens_; }

 private:
  void Refill(Clock::time_point now);
  double capacity_ = 1, rate_ = 0, tokens_ = 1;
  Clock::time_point last_{};
};

class RouteRateLimiter {
 public:
  using Clock = TokenBucket::Clock;
  // Buckets kept per node; past it, idle (full) buckets are forgotten, then new perSource sources share one.
  static constexpr size_t kMaxBuckets = 10000;

  struct Verdict {
    bool allowed = true;
    uint32_t retry_after_s = 0;  // when refused
  };
  // One request of |rule| from |source| (a SPIFFE ID or address; used with perSource). Rules without a limit: allowed.
  Verdict Take(const agent::HttpRouteRule& rule, const std::string& source, Clock::time_point now = Clock::now());
  // One request under |limit| counted in bucket |key| (a rule's key, or a destination's "<service>@<pod>"), per
  // |source| with perSource.
  Verdict Take(const agent::HttpRateLimitPolicy& limit, const std::string& key, const std::string& source,
               Clock::time_point now = Clock::now());

  uint64_t rejections() const { return rejections_.load(std::memory_order_relaxed); }
  size_t buckets() const;

 private:
  struct Entry {
    uint32_t requests = 0, burst = 0;
    int64_t interval_ms = 0;
    TokenBucket bucket;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> buckets_;  // rule or destination key [+ "|" + source]
  std::atomic<uint64_t> rejections_{0};
};

}  // namespace zm::traffic
