#include "controller/auth/agent_auth.h"

#include <string_view>

namespace zm::ctrl {

grpc::Status AgentAuthenticator::Authenticate(const grpc::ServerContext& ctx, std::string* node) const {
  const auto& md = ctx.client_metadata();
  const char* kind =
      reviewer_ ? (join_tokens_ ? "join or ServiceAccount token" : "ServiceAccount token") : "join token";
  auto it = md.find("authorization");
  if (it == md.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED, std::string("missing 'authorization: Bearer <") + kind + ">' metadata"};
  }
  std::string_view value(it->second.data(), it->second.size());
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
    if (auto st = reviewer_->NodeFor(std::string(token), PeerAddress(ctx.peer()), &n); !st.ok()) {
      return join_tokens_ && st.error_code() == grpc::StatusCode::UNAUTHENTICATED
                 ? grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                "neither a known join token nor a valid ServiceAccount token: " + st.error_message())
                 : st;
    }
    owner = n;
    what = "ServiceAccount token";
  }
  if (!owner) return {grpc::StatusCode::UNAUTHENTICATED, "unknown join token"};
  if (auto claimed = md.find(kNodeMetadata); claimed != md.end()) {
    std::string_view c(claimed->second.data(), claimed->second.size());
    if (c != *owner) {
      return {grpc::StatusCode::UNAUTHENTICATED,
              std::string(what) + " does not belong to node '" + std::string(c) + "' (it belongs to '" + *owner + "')"};
    }
  }
  *node = *owner;
  return grpc::Status::OK;
}

}  // namespace zm::ctrl
