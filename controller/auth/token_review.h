// Kubernetes-mode agent authentication: the agent presents its projected ServiceAccount token; the API server checks it
// (authentication.k8s.io/v1 TokenReview, with our audience). The token must belong to the agent ServiceAccount and be
// bound to a pod; the node that pod is scheduled on (from the controller's own pod watch, cross-checked with the
// token's node claim when present) is the only node whose identities the caller may request.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "controller/k8s/http.h"

namespace zm::ctrl {

struct TokenReviewOptions {
  std::string audience = "zeromesh";
  std::string agent_namespace = "zeromesh-system";
  std::string agent_service_account = "zeromesh-agent";
  std::chrono::seconds cache_ttl{60};          // a reviewed token is trusted this long (its pod is re-checked per call)
  std::chrono::seconds negative_cache_ttl{5};  // rejected tokens: bounds API calls from a misconfigured agent
  size_t max_cache_entries = 4096;
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

class TokenReviewer {
 public:
  using PodLookup = std::function<std::optional<nlohmann::json>(const std::string& ns, const std::string& name)>;

  TokenReviewer(const k8s::Http* http, TokenReviewOptions opts, PodLookup pods)
      : http_(http), opts_(std::move(opts)), pods_(std::move(pods)) {}

  grpc::Status NodeFor(const std::string& token, std::string* node) const;
  const TokenReviewOptions& options() const { return opts_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    grpc::Status status;
    ReviewedToken token;
    Clock::time_point expires;
  };
  grpc::Status Review(const std::string& token, ReviewedToken* out) const;

  const k8s::Http* http_;
  const TokenReviewOptions opts_;
  const PodLookup pods_;
  mutable std::mutex mu_;
  mutable std::map<std::string, Entry> cache_;  // SHA-256 of the token -> verdict
};

}  // namespace zm::ctrl
