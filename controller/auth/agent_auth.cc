#include "controller/auth/agent_auth.h"

#include <string_view>

namespace zm::ctrl {

AgentAuthenticator::Caller AgentAuthenticator::CallerOf(const grpc::ServerContextBase& ctx) {
  Caller c;
  const auto& md = ctx.client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) c.authorization.emplace(it->second.data(), it->second.size());
  if (auto it = md.find(kNodeMetadata); it != md.end()) c.claimed_node.emplace(it->second.data(), it->second.size());
  c.peer = ctx.peer();
  return c;
}

grpc::Status AgentAuthenticator::Authenticate(const Caller& caller, std::string* node) const {
  const char* kind =
      reviewer_ ? (join_tokens_ ? "join or ServiceAccount token" : "ServiceAccount token") : "join token";
  if (!caller.authorization) {
    return {grpc::StatusCode::UNAUTHENTICATED, std::string("missing 'authorization: Bearer <") + kind + ">' metadata"};
  }
  std::string_view value(*caller.authorization);
  constexpr std::string_view kBearer = "Bearer ";
  if (value.substr(0, kBearer.size()) != kBearer || value.size() == kBearer.size()) {
    return {grpc::StatusCode::UNAUTHENTICATED, std::string("authorization metadata must be 'Bearer <") + kind + ">'"};
  }
  std::string_view token = value.substr(kBearer.size());
  JoinTokenMatch join = join_tokens_ ? join_tokens_->Match(token) : JoinTokenMatch{};
  if (join.result == JoinTokenMatch::Result::kExpired) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "join token of node '" + join.node + "' expired at " + FormatRfc3339Utc(join.expires_unix)};
  }
  std::optional<std::string> owner;
  if (join.result == JoinTokenMatch::Result::kValid) owner = join.node;
  const char* what = "join token";
  if (!owner && reviewer_) {
    std::string n;
    if (auto st = reviewer_->NodeFor(std::string(token), PeerAddress(caller.peer), &n); !st.ok()) {
      return join_tokens_ && st.error_code() == grpc::StatusCode::UNAUTHENTICATED
                 ? grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                "neither a known join token nor a valid ServiceAccount token: " + st.error_message())
                 : st;
    }
    owner = n;
    what = "ServiceAccount token";
  }
  if (!owner) return {grpc::StatusCode::UNAUTHENTICATED, "unknown join token"};
  if (caller.claimed_node && *caller.claimed_node != *owner) {
    return {grpc::StatusCode::UNAUTHENTICATED, std::string(what) + " does not belong to node '" + *caller.claimed_node +
                                                   "' (it belongs to '" + *owner + "')"};
  }
  *node = *owner;
  return grpc::Status::OK;
}

}  // namespace zm::ctrl
