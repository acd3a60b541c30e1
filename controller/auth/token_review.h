// Kubernetes-mode agent authentication: the agent presents its projected ServiceAccount token; the API server checks it
// (authentication.k8s.io/v1 TokenReview, with our audience). The token must belong to the agent ServiceAccount, be
// reviewed for our audience and be bound to a pod; the node that pod is scheduled on (from the controller's own pod
// watch, cross-checked with the token's node claim when present) is the only node whose identities the caller may
// request.
//
// The gRPC port is reachable by anyone, so reviews are bounded: verdicts are cached (accepted and rejected tokens in
// separate LRUs, so bogus tokens only ever evict other bogus tokens), identical tokens share one in-flight review, at
// most `max_in_flight` reviews run at once, and each peer address may cause only `peer_rate`/s new reviews.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "controller/k8s/http.h"

namespace zm::ctrl {

struct TokenReviewOptions {
  std::string audience = "zeromesh";
  std::string agent_namespace = "zeromesh-system";
  std::string agent_service_account = "zeromesh-agent";
  std::chrono::seconds cache_ttl{60};          // a reviewed token is trusted this long (its pod is re-checked per call)
  std::chrono::seconds negative_cache_ttl{5};  // rejected tokens: bounds API calls from a misconfigured agent
  size_t max_accepted_entries = 4096;          // LRU of accepted tokens (about one per agent pod)
  size_t max_rejected_entries = 4096;          // LRU of rejected tokens (a flood only evicts its own kind)
  size_t max_in_flight = 4;                    // TokenReview calls at once
  std::chrono::milliseconds slot_wait{2000};   // longer than this without a free slot: UNAVAILABLE (agents retry)
  double peer_rate = 5;                        // reviews per second one peer address may cause (cache misses only)
  double peer_burst = 10;
  size_t max_peers = 4096;  // LRU of peer addresses with a token bucket
  int review_timeout_seconds = 10;
};

// What the API server said about one token (without the token itself).
struct ReviewedToken {
  std::string pod_namespace, pod_name, pod_uid;
  std::string node_claim;  // authentication.kubernetes.io/node-name, when the server adds it
};

// Parses a TokenReview response. OK with *out set, or the status to return to the caller.
grpc::Status ParseTokenReview(const nlohmann::json& review, const TokenReviewOptions& opts, ReviewedToken* out);
// The node a reviewed token may act for, given its pod as the controller currently sees it (nullopt: not seen).
grpc::Status NodeOfReviewedPod(const ReviewedToken& t, const std::optional<nlohmann::json>& pod, std::string* node);
// The address part of a gRPC peer string, the unit of rate limiting: "ipv4:10.0.0.1:5555" -> "10.0.0.1",
// "ipv6:[::1]:5555" (or %5B::1%5D) -> "::1"; anything else (unix sockets...) is returned as is.
std::string PeerAddress(std::string_view grpc_peer);

// A bounded map with least-recently-used eviction. Not thread-safe (TokenReviewer locks).
template <typename V>
class LruMap {
 public:
  explicit LruMap(size_t capacity) : capacity_(capacity) {}
  V* Find(const std::string& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.second);
    return &it->second.first;
  }
  void Put(const std::string& key, V value) {
    if (V* v = Find(key)) {
      *v = std::move(value);
      return;
    }
    if (capacity_ == 0) return;
    if (map_.size() >= capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(key);
    map_.emplace(key, std::make_pair(std::move(value), order_.begin()));
  }
  void Erase(const std::string& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    order_.erase(it->second.second);
    map_.erase(it);
  }
  size_t size() const { return map_.size(); }

 private:
  const size_t capacity_;
  std::list<std::string> order_;  // most recently used first
  std::unordered_map<std::string, std::pair<V, std::list<std::string>::iterator>> map_;
};

// A token bucket per peer address; the map of peers is an LRU of bounded size (a forgotten peer starts full again).
class PeerRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  PeerRateLimiter(double rate, double burst, size_t max_peers) : rate_(rate), burst_(burst), buckets_(max_peers) {}
  // Takes one token from the peer's bucket; false when it is empty. Not thread-safe (TokenReviewer locks).
  bool Allow(const std::string& peer, Clock::time_point now);
  size_t peers() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  const double rate_, burst_;
  LruMap<Bucket> buckets_;
};

class TokenReviewer {
 public:
  using PodLookup = std::function<std::optional<nlohmann::json>(const std::string& ns, const std::string& name)>;
  // POSTs one TokenReview body to the API server (tests substitute a fake).
  using SendReview = std::function<k8s::HttpResponse(const std::string& body, int timeout_seconds)>;
  enum class Result { kAccepted, kRejected, kError };  // of a review actually sent
  enum class Throttle { kRateLimited, kBusy };         // a review not sent
  static const char* Label(Result r);                  // the metric label: "accepted", "rejected", "error"
  static const char* Label(Throttle t);                // "rate_limited", "busy"
  struct Observer {
    std::function<void(Result)> reviewed;
    std::function<void(Throttle)> throttled;
  };

  TokenReviewer(const k8s::Http* http, TokenReviewOptions opts, PodLookup pods, Observer observer = {});
  TokenReviewer(SendReview send, TokenReviewOptions opts, PodLookup pods, Observer observer = {});

  // `peer` is the caller's address (PeerAddress): new tokens are rate limited per peer.
  grpc::Status NodeFor(const std::string& token, const std::string& peer, std::string* node) const;
  const TokenReviewOptions& options() const { return opts_; }
  // Callers currently waiting for another caller's review of the same token or for a free slot.
  size_t waiters() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Accepted {
    ReviewedToken token;
    Clock::time_point expires;
  };
  struct Rejected {
    grpc::Status status;
    Clock::time_point expires;
  };
  struct Flight {  // one review in progress; callers with the same token wait for it
    bool done = false;
    grpc::Status status;
    ReviewedToken token;
  };

  // The verdict for a token not (or no longer) cached: joins or starts a review. Called with mu_ held by `lock`.
  grpc::Status Verdict(const std::string& key, const std::string& token, const std::string& peer, bool known_good,
                       std::unique_lock<std::mutex>& lock, ReviewedToken* out) const;
  grpc::Status Review(const std::string& token, ReviewedToken* out) const;
  void Count(Result r) const;
  void Count(Throttle t) const;

  const SendReview send_;
  const TokenReviewOptions opts_;
  const PodLookup pods_;
  const Observer observer_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // a flight finished or a slot freed
  mutable LruMap<Accepted> accepted_;   // keyed by the SHA-256 of the token
  mutable LruMap<Rejected> rejected_;
  mutable PeerRateLimiter limiter_;
  mutable std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  mutable size_t in_flight_ = 0;
  mutable size_t waiters_ = 0;
};

}  // namespace zm::ctrl
