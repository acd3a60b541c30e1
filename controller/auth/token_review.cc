#include "controller/auth/token_review.h"

#include <openssl/sha.h>

#include "common/log.h"
#include "controller/k8s/reflector.h"

namespace zm::ctrl {
namespace {

using nlohmann::json;
constexpr const char* kPodName = "authentication.kubernetes.io/pod-name";
constexpr const char* kPodUid = "authentication.kubernetes.io/pod-uid";
constexpr const char* kNodeName = "authentication.kubernetes.io/node-name";

std::string TokenHash(const std::string& token) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(token.data()), token.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

// user.extra values are lists of strings; the pod claims hold exactly one.
std::string Extra(const json& user, const char* key) {
  auto extra = user.find("extra");
  if (extra == user.end() || !extra->is_object()) return "";
  auto it = extra->find(key);
  if (it == extra->end() || !it->is_array() || it->size() != 1 || !(*it)[0].is_string()) return "";
  return (*it)[0].get<std::string>();
}

}  // namespace

grpc::Status ParseTokenReview(const json& review, const TokenReviewOptions& opts, ReviewedToken* out) {
  const json* status = review.is_object() && review.contains("status") ? &review["status"] : nullptr;
  if (!status || !status->is_object()) {
    return {grpc::StatusCode::UNAVAILABLE, "the API server's TokenReview answer has no status"};
  }
  if (!status->value("authenticated", false)) {
    std::string why = status->contains("error") && (*status)["error"].is_string()
                          ? (*status)["error"].get<std::string>()
                          : "invalid, expired or revoked";
    return {grpc::StatusCode::UNAUTHENTICATED, "the Kubernetes API server rejected the token: " + why};
  }
  const json& user = status->contains("user") ? (*status)["user"] : json::object();
  std::string username = user.is_object() && user.contains("username") && user["username"].is_string()
                             ? user["username"].get<std::string>()
                             : "";
  const std::string want = "system:serviceaccount:" + opts.agent_namespace + ":" + opts.agent_service_account;
  if (username != want) {
    return {grpc::StatusCode::PERMISSION_DENIED, "the token belongs to '" + username + "'; only ServiceAccount " +
                                                     opts.agent_namespace + "/" + opts.agent_service_account +
                                                     " (the agent DaemonSet's) may act as an agent"};
  }
  ReviewedToken t;
  t.pod_namespace = opts.agent_namespace;
  t.pod_name = Extra(user, kPodName);
  t.pod_uid = Extra(user, kPodUid);
  t.node_claim = Extra(user, kNodeName);
  if (t.pod_name.empty() || t.pod_uid.empty()) {
    return {grpc::StatusCode::PERMISSION_DENIED,
            "the token is not bound to a pod: agents must present a projected ServiceAccount token (audience '" +
                opts.audience + "'), not a long-lived or TokenRequest token without a pod"};
  }
  *out = std::move(t);
  return grpc::Status::OK;
}

grpc::Status NodeOfReviewedPod(const ReviewedToken& t, const std::optional<json>& pod, std::string* node) {
  const std::string name = t.pod_namespace + "/" + t.pod_name;
  if (!pod) {
    // The pod watch may lag the pod's creation by a moment: the agent retries.
    return {grpc::StatusCode::UNAVAILABLE, "the token's pod " + name + " is not known (yet) to the controller"};
  }
  std::string uid = k8s::StrAt(*pod, "metadata", "uid");
  if (uid != t.pod_uid) {
    return {grpc::StatusCode::PERMISSION_DENIED, "the token is bound to pod " + name + " uid " + t.pod_uid +
                                                     ", which no longer exists (now uid " + uid + ")"};
  }
  std::string bound = k8s::StrAt(*pod, "spec", "nodeName");
  if (bound.empty()) {
    return {grpc::StatusCode::PERMISSION_DENIED, "the token's pod " + name + " is not scheduled to a node"};
  }
  if (!t.node_claim.empty() && t.node_claim != bound) {
    return {grpc::StatusCode::PERMISSION_DENIED,
            "the token names node '" + t.node_claim + "' but pod " + name + " runs on '" + bound + "'"};
  }
  *node = bound;
  return grpc::Status::OK;
}

grpc::Status TokenReviewer::Review(const std::string& token, ReviewedToken* out) const {
  json body = {{"apiVersion", "authentication.k8s.io/v1"},
               {"kind", "TokenReview"},
               {"spec", {{"token", token}, {"audiences", json::array({opts_.audience})}}}};
  k8s::HttpResponse r =
      http_->Request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body.dump(), "application/json", 10);
  if (!r.ok()) {
    std::string hint = r.status == 403 ? " (the controller's RBAC must allow create on tokenreviews)" : "";
    log::Warn("token review failed", {{"error", r.Describe()}});
    return {grpc::StatusCode::UNAVAILABLE,
            "cannot review the token with the Kubernetes API server: " + r.Describe() + hint};
  }
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return {grpc::StatusCode::UNAVAILABLE, "the API server's TokenReview answer is not JSON"};
  return ParseTokenReview(j, opts_, out);
}

grpc::Status TokenReviewer::NodeFor(const std::string& token, std::string* node) const {
  const std::string key = TokenHash(token);
  const auto now = Clock::now();
  std::optional<Entry> hit;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.expires > now) hit = it->second;
  }
  if (!hit) {
    Entry e;
    e.status = Review(token, &e.token);
    bool definite = e.status.ok() || e.status.error_code() != grpc::StatusCode::UNAVAILABLE;
    if (definite) {  // an unreachable API server is not a verdict: ask again next time
      e.expires = now + (e.status.ok() ? opts_.cache_ttl : opts_.negative_cache_ttl);
      std::lock_guard<std::mutex> lock(mu_);
      if (cache_.size() >= opts_.max_cache_entries) {
        std::erase_if(cache_, [now](const auto& kv) { return kv.second.expires <= now; });
        if (cache_.size() >= opts_.max_cache_entries) cache_.clear();
      }
      cache_[key] = e;
    }
    hit = std::move(e);
  }
  if (!hit->status.ok()) return hit->status;
  // Re-checked on every call, even from the cache: a deleted or rescheduled pod loses its node at once.
  return NodeOfReviewedPod(hit->token, pods_(hit->token.pod_namespace, hit->token.pod_name), node);
}

}  // namespace zm::ctrl
