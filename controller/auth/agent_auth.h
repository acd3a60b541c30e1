// Who is calling? Agents (and meshctl) send "authorization: Bearer <token>". The token is either a universal-mode join
// token (the node is whatever the token belongs to) or, in Kubernetes mode, a projected ServiceAccount token that the
// API server vouches for (TokenReview; the node is the one its bound pod runs on).
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <optional>
#include <string>

#include "controller/auth/join_token_file.h"
#include "controller/auth/token_review.h"

namespace zm::ctrl {

class AgentAuthenticator {
 public:
  // Either may be null (not configured); with both, a join token is tried first (no API call needed).
  AgentAuthenticator(const JoinTokenFile* join_tokens, const TokenReviewer* reviewer)
      : join_tokens_(join_tokens), reviewer_(reviewer) {}

  // OK with *node set; otherwise UNAUTHENTICATED / PERMISSION_DENIED / UNAVAILABLE with a message saying what is wrong,
  // or RESOURCE_EXHAUSTED when the caller's address sends too many new ServiceAccount tokens (TokenReviewer). If the
  // caller sends x-zeromesh-node, it must name the node the credential belongs to.
  // Cheap for join tokens (a hash and a scan), so open streams call it again to notice revocation.
  grpc::Status Authenticate(const grpc::ServerContextBase& ctx, std::string* node) const {
    return Authenticate(CallerOf(ctx), node);
  }

  // What Authenticate reads from a call, copied: a callback-served stream re-checks it on other threads, without
  // touching the call's context.
  struct Caller {
    std::optional<std::string> authorization;
    std::optional<std::string> claimed_node;  // x-zeromesh-node
    std::string peer;
  };
  static Caller CallerOf(const grpc::ServerContextBase& ctx);
  grpc::Status Authenticate(const Caller& caller, std::string* node) const;
  const JoinTokenFile* join_tokens() const { return join_tokens_; }  // null: not configured

 private:
  const JoinTokenFile* join_tokens_;
  const TokenReviewer* reviewer_;
};

}  // namespace zm::ctrl
