#include "controller/console/console_auth.h"

#include "common/tls/digest.h"

namespace zm::ctrl::console {

using nlohmann::json;

AuthResult JoinTokenAuth::Authenticate(const std::string& token) const {
  AuthResult r;
  if (tokens_ == nullptr) return {503, "this controller has no join-token file to check console tokens against", {}};
  JoinTokenMatch m = tokens_->Match(token);
  if (m.result == JoinTokenMatch::Result::kExpired) return {401, "this token has expired", {}};
  if (m.result != JoinTokenMatch::Result::kValid) return {401, "unknown token", {}};
  r.user.name = "token:" + m.node;
  r.user.can_write = m.node == kAdminTokenName;
  return r;
}

AuthResult KubernetesAuth::Authenticate(const std::string& token) const {
  const std::string key = tls::Sha256Hex(token);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    // A refusal is kept only briefly: a user granted rights a moment ago should not wait out the whole TTL.
    const auto ttl = it != cache_.end() && it->second.result.status != 0 ? std::min(ttl_, kRefusalTtl) : ttl_;
    if (it != cache_.end() && now - it->second.at < ttl) return it->second.result;
  }
  AuthResult r = Review(token);
  if (r.status == 503) return r;  // the API server did not answer: not a verdict worth keeping
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCached) {
    for (auto it = cache_.begin(); it != cache_.end();) it = now - it->second.at >= ttl_ ? cache_.erase(it) : ++it;
    if (cache_.size() >= kMaxCached) cache_.erase(cache_.begin());
  }
  cache_[key] = {r, now};
  return r;
}

AuthResult KubernetesAuth::Review(const std::string& token) const {
  json review = {{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenReview"}, {"spec", {{"token", token}}}};
  auto resp =
      http_->Request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review.dump(), "application/json", 10);
  if (!resp.ok()) return {503, "cannot review the token with the Kubernetes API server: " + resp.Describe(), {}};
  json j = json::parse(resp.body, nullptr, false);
  const json* status = j.is_object() && j.contains("status") ? &j["status"] : nullptr;
  if (status == nullptr || !status->value("authenticated", false)) {
    return {401, "the Kubernetes API server does not accept this token", {}};
  }
  const json user = status->value("user", json::object());
  const std::string name = user.value("username", "");
  if (name.empty()) return {401, "the token review names no user", {}};
  const json groups = user.value("groups", json::array());
  const std::string uid = user.value("uid", "");
  bool may_read = false, may_write = false;
  std::string error;
  if (!Allowed(name, groups, uid, "list", &may_read, &error)) return {503, error, {}};
  if (!may_read) {
    return {403, name + " may not list trafficpermissions.zeromesh.io (the console's read permission)", {}};
  }
  if (!Allowed(name, groups, uid, "create", &may_write, &error)) return {503, error, {}};
  return {0, "", {name, may_write}};
}

bool KubernetesAuth::Allowed(const std::string& user, const json& groups, const std::string& uid, const char* verb,
                             bool* allowed, std::string* error) const {
  json sar = {
      {"apiVersion", "authorization.k8s.io/v1"},
      {"kind", "SubjectAccessReview"},
      {"spec",
       {{"user", user},
        {"groups", groups},
        {"uid", uid},
        {"resourceAttributes", {{"group", "zeromesh.io"}, {"resource", "trafficpermissions"}, {"verb", verb}}}}}};
  auto resp =
      http_->Request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar.dump(), "application/json", 10);
  if (!resp.ok()) {
    *error = "cannot check the user's rights with the Kubernetes API server: " + resp.Describe();
    return false;
  }
  json j = json::parse(resp.body, nullptr, false);
  *allowed = j.is_object() && j.contains("status") && j["status"].value("allowed", false);
  return true;
}

}  // namespace zm::ctrl::console
