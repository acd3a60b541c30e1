#include "controller/auth/token_review.h"

#include <openssl/sha.h>

#include <algorithm>
#include <sstream>

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

std::string Number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
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
  // As Kubernetes' own webhook authenticator: the audiences the server reviewed the token for must include ours. A
  // server that returns none did not check the audience at all.
  const json* auds = status->contains("audiences") ? &(*status)["audiences"] : nullptr;
  if (!auds || !auds->is_array() || auds->empty()) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "the Kubernetes API server's TokenReview answer lists no audiences: "
            "cannot tell that the token is meant for audience '" +
                opts.audience + "'"};
  }
  if (std::none_of(auds->begin(), auds->end(),
                   [&](const json& a) { return a.is_string() && a.get<std::string>() == opts.audience; })) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "the token is not meant for audience '" + opts.audience + "' (the API server reviewed it for " +
                auds->dump() + "); agents must present a projected token with audience '" + opts.audience + "'"};
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

std::string PeerAddress(std::string_view peer) {
  constexpr std::string_view kV4 = "ipv4:", kV6 = "ipv6:";
  if (peer.starts_with(kV4)) {
    std::string_view rest = peer.substr(kV4.size());
    return std::string(rest.substr(0, rest.rfind(':')));
  }
  if (!peer.starts_with(kV6)) return std::string(peer);
  std::string rest(peer.substr(kV6.size()));
  // gRPC percent-encodes the brackets (and a zone's '%') in its URIs.
  for (auto [enc, dec] : {std::pair{"%5B", "["}, {"%5D", "]"}, {"%25", "%"}}) {
    for (size_t at; (at = rest.find(enc)) != std::string::npos;) rest.replace(at, 3, dec);
  }
  if (rest.starts_with('[')) {
    size_t close = rest.find(']');
    if (close != std::string::npos) return rest.substr(1, close - 1);
  }
  return rest;
}

bool PeerRateLimiter::Allow(const std::string& peer, Clock::time_point now) {
  Bucket* b = buckets_.Find(peer);
  if (!b) {
    buckets_.Put(peer, Bucket{burst_, now});
    b = buckets_.Find(peer);
    if (!b) return true;  // no room for any peer: unlimited
  } else if (now > b->last) {
    b->tokens = std::min(burst_, b->tokens + std::chrono::duration<double>(now - b->last).count() * rate_);
    b->last = now;
  }
  if (b->tokens < 1) return false;
  b->tokens -= 1;
  return true;
}

TokenReviewer::TokenReviewer(const k8s::Http* http, TokenReviewOptions opts, PodLookup pods, Observer observer)
    : TokenReviewer(
          [http](const std::string& body, int timeout_seconds) {
            return http->Request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body, "application/json",
                                 timeout_seconds);
          },
          std::move(opts), std::move(pods), std::move(observer)) {}

TokenReviewer::TokenReviewer(SendReview send, TokenReviewOptions opts, PodLookup pods, Observer observer)
    : send_(std::move(send)),
      opts_(std::move(opts)),
      pods_(std::move(pods)),
      observer_(std::move(observer)),
      accepted_(opts_.max_accepted_entries),
      rejected_(opts_.max_rejected_entries),
      limiter_(opts_.peer_rate, opts_.peer_burst, opts_.max_peers) {}

const char* TokenReviewer::Label(Result r) {
  switch (r) {
    case Result::kAccepted:
      return "accepted";
    case Result::kRejected:
      return "rejected";
    case Result::kError:
      return "error";
  }
  return "error";
}

const char* TokenReviewer::Label(Throttle t) {
  return t == Throttle::kRateLimited ? "rate_limited" : "busy";
}

void TokenReviewer::Count(Result r) const {
  if (observer_.reviewed) observer_.reviewed(r);
}

void TokenReviewer::Count(Throttle t) const {
  if (observer_.throttled) observer_.throttled(t);
}

grpc::Status TokenReviewer::Review(const std::string& token, ReviewedToken* out) const {
  json body = {{"apiVersion", "authentication.k8s.io/v1"},
               {"kind", "TokenReview"},
               {"spec", {{"token", token}, {"audiences", json::array({opts_.audience})}}}};
  k8s::HttpResponse r = send_(body.dump(), opts_.review_timeout_seconds);
  if (!r.ok()) {
    Count(Result::kError);
    std::string hint = r.status == 403 ? " (the controller's RBAC must allow create on tokenreviews)" : "";
    log::Warn("token review failed", {{"error", r.Describe()}});
    return {grpc::StatusCode::UNAVAILABLE,
            "cannot review the token with the Kubernetes API server: " + r.Describe() + hint};
  }
  auto j = json::parse(r.body, nullptr, false);
  grpc::Status st = j.is_discarded()
                        ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "the API server's TokenReview answer is not JSON")
                        : ParseTokenReview(j, opts_, out);
  Count(st.ok()                                            ? Result::kAccepted
        : st.error_code() == grpc::StatusCode::UNAVAILABLE ? Result::kError
                                                           : Result::kRejected);
  return st;
}

grpc::Status TokenReviewer::Verdict(const std::string& key, const std::string& token, const std::string& peer,
                                    bool known_good, std::unique_lock<std::mutex>& lock, ReviewedToken* out) const {
  if (auto it = flights_.find(key); it != flights_.end()) {  // the same token is being reviewed: share its answer
    std::shared_ptr<Flight> f = it->second;
    waiters_++;
    cv_.wait(lock, [&] { return f->done; });
    waiters_--;
    *out = f->token;
    return f->status;
  }
  // Cache misses cost an API call, so they are rate limited per peer; a token accepted before (its entry expired) is
  // not: a real agent behind the same address as a flood must still re-authenticate.
  if (!known_good && !limiter_.Allow(peer, Clock::now())) {
    Count(Throttle::kRateLimited);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, "too many new tokens from " + peer + ": at most " +
                                                      Number(opts_.peer_rate) + " TokenReviews per second (burst " +
                                                      Number(opts_.peer_burst) + ") per address; retry later"};
  }
  auto f = std::make_shared<Flight>();
  flights_[key] = f;
  waiters_++;
  bool slot = cv_.wait_for(lock, opts_.slot_wait, [&] { return in_flight_ < opts_.max_in_flight; });
  waiters_--;
  if (slot) {
    in_flight_++;
    lock.unlock();
    ReviewedToken t;
    grpc::Status st = Review(token, &t);
    lock.lock();
    in_flight_--;
    f->status = st;
    f->token = t;
    // An unreachable API server is not a verdict: ask again next time.
    if (st.ok() || st.error_code() != grpc::StatusCode::UNAVAILABLE) {
      const auto now = Clock::now();
      if (st.ok()) {
        accepted_.Put(key, Accepted{std::move(t), now + opts_.cache_ttl});
        rejected_.Erase(key);
      } else {
        rejected_.Put(key, Rejected{st, now + opts_.negative_cache_ttl});
        accepted_.Erase(key);
      }
    }
  } else {
    Count(Throttle::kBusy);
    f->status = {grpc::StatusCode::UNAVAILABLE, "too many token reviews in flight (" +
                                                    std::to_string(opts_.max_in_flight) +
                                                    " at once with the Kubernetes API server); retry"};
  }
  f->done = true;
  flights_.erase(key);
  cv_.notify_all();
  *out = f->token;
  return f->status;
}

size_t TokenReviewer::waiters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_;
}

grpc::Status TokenReviewer::NodeFor(const std::string& token, const std::string& peer, std::string* node) const {
  const std::string key = TokenHash(token);
  ReviewedToken good;
  {
    std::unique_lock<std::mutex> lock(mu_);
    const auto now = Clock::now();
    bool known_good = false, fresh = false;
    if (Accepted* a = accepted_.Find(key)) {
      known_good = true;
      fresh = a->expires > now;
      if (fresh) good = a->token;
    }
    if (!fresh) {
      if (Rejected* r = rejected_.Find(key); r && r->expires > now) return r->status;
      if (auto st = Verdict(key, token, peer, known_good, lock, &good); !st.ok()) return st;
    }
  }
  // Re-checked on every call, even from the cache: a deleted or rescheduled pod loses its node at once.
  return NodeOfReviewedPod(good, pods_(good.pod_namespace, good.pod_name), node);
}

}  // namespace zm::ctrl
