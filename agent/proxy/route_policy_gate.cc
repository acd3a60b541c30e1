#include "agent/proxy/route_policy_gate.h"

#include <arpa/inet.h>

#include "agent/proxy/conn_observer.h"
#include "agent/traffic/fault_injection.h"
#include "common/http/status_reason.h"

namespace zm::proxy {

RoutePolicyVerdict DecideRoutePolicy(traffic::RouteRateLimiter* limiter, const agent::HttpRouteRule& rule,
                                     const agent::MeshSnapshot* snap, in_addr_t src_ip) {
  RoutePolicyVerdict v;
  if (limiter != nullptr && rule.rate_limit.enabled()) {
    std::string source;
    if (rule.rate_limit.per_source) {
      source = PrincipalOf(snap, src_ip);
      if (source.empty()) {
        char ip[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &src_ip, ip, sizeof(ip));
        source = ip;
      }
    }
    auto lim = limiter->Take(rule, source);
    if (!lim.allowed) {
      v.reply = true;
      v.local.status = 429;
      v.local.headers = {{"retry-after", std::to_string(lim.retry_after_s)}, {"x-zeromesh-ratelimited", "1"}};
      v.local.body = "local rate limit exceeded (ServicePolicy " + rule.rate_limit.policy + ")\n";
      v.local.grpc_status = 8;  // RESOURCE_EXHAUSTED
      v.local.grpc_message = "zeromesh: local rate limit exceeded";
      v.local.fault = "ratelimited";
      v.local.policy = rule.rate_limit.policy;
      return v;
    }
  }
  if (!rule.fault.enabled()) return v;
  auto f = traffic::DecideFault(rule.fault, traffic::FaultDraw(traffic::FaultStream::kAbort),
                                traffic::FaultDraw(traffic::FaultStream::kDelay));
  if (f.action == traffic::FaultAction::kAbort) {
    v.reply = true;
    v.local.status = rule.fault.abort_status;
    v.local.headers = {{"x-zeromesh-fault", "abort"}};
    v.local.body = "fault filter abort\n";  // Envoy's body for an injected abort
    v.local.grpc_status = rule.fault.abort_grpc_status != 0 ? rule.fault.abort_grpc_status
                                                            : traffic::GrpcStatusForHttp(rule.fault.abort_status);
    v.local.grpc_message = "zeromesh: fault injected";
    v.local.fault = "abort";
    v.local.policy = rule.fault.policy;
  } else if (f.action == traffic::FaultAction::kDelay) {
    v.delay = f.delay;
  }
  return v;
}

bool BodylessReply(const std::string& method, int status) {
  return method == "HEAD" || status == 204 || status == 304;
}

std::string SerializeLocalReply(const LocalReply& reply, const std::string& method, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + http::StatusReason(reply.status) + "\r\n";
  // A HEAD response announces the body it would have; 204 has no length at all.
  if (reply.status != 204) {
    out += "content-type: text/plain\r\ncontent-length: " + std::to_string(reply.body.size()) + "\r\n";
  }
  for (const auto& [name, value] : reply.headers) out += name + ": " + value + "\r\n";
  if (close) out += "connection: close\r\n";
  out += "\r\n";
  if (!BodylessReply(method, reply.status)) out += reply.body;
  return out;
}

}  // namespace zm::proxy
