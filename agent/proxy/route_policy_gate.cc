#include "agent/proxy/route_policy_gate.h"

#include "agent/proxy/conn_observer.h"
#include "agent/traffic/fault_injection.h"
#include "common/http/status_reason.h"

namespace zm::proxy {

RoutePolicyVerdict DecideRoutePolicy(traffic::RouteRateLimiter* limiter, const agent::HttpRouteRule& rule,
                                     const agent::MeshSnapshot* snap, const net::IpAddr& src_ip) {
  RoutePolicyVerdict v;
  if (limiter != nullptr && rule.rate_limit.enabled()) {
    std::string source;
    if (rule.rate_limit.per_source) {
      source = PrincipalOf(snap, src_ip);
      if (source.empty()) source = src_ip.ToString();
    }
    auto lim = limiter->Take(rule, source);
    if (!lim.allowed) {
      v.reply = true;
      v.local = RateLimitedReply(rule.rate_limit.policy, lim.retry_after_s);
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

LocalReply RateLimitedReply(const std::string& policy, uint32_t retry_after_s) {
  LocalReply r;
  r.status = 429;
  r.headers = {{"retry-after", std::to_string(retry_after_s)}, {"x-zeromesh-ratelimited", "1"}};
  r.body = "local rate limit exceeded (ServicePolicy " + policy + ")\n";
  r.grpc_status = 8;  // RESOURCE_EXHAUSTED
  r.grpc_message = "zeromesh: local rate limit exceeded";
  r.fault = "ratelimited";
  r.policy = policy;
  return r;
}

bool DestinationRateLimited(traffic::RouteRateLimiter* limiter, const agent::MeshSnapshot& snap,
                            const net::SockAddr& dst, const tls::SpiffeId* source_id, const net::IpAddr& src_ip,
                            LocalReply* reply) {
  if (limiter == nullptr) return false;
  agent::PortProtocol protocol = agent::PortProtocol::kTcp;
  const agent::Service* svc = snap.FindServiceOfEndpoint(dst.ip, dst.port, &protocol);
  if (svc == nullptr || !svc->policy.http_rate_limit.enabled()) return false;
  const agent::HttpRateLimitPolicy& limit = svc->policy.http_rate_limit;
  // "@" keeps these buckets apart from the rules' ("<ns>/<route>#<index>").
  const std::string key = svc->ns + "/" + svc->name + "@" + dst.ip.ToString();
  std::string source;
  if (limit.per_source) {
    if (source_id != nullptr) {
      source = source_id->ToString();
    } else {
      source = src_ip.ToString();
    }
  }
  auto lim = limiter->Take(limit, key, source);
  if (lim.allowed) return false;
  *reply = RateLimitedReply(limit.policy, lim.retry_after_s);
  return true;
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
