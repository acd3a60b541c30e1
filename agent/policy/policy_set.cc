// PolicySet::Evaluate: the per-connection decision and its human-readable reason.
#include "agent/policy/policy_set.h"

#include <algorithm>
#include <charconv>

namespace zm::agent::policy {
namespace {

// Reasons are built by appending into the returned string: no temporaries on the connection path.
void AppendSource(const proxy::AuthzRequest& req, std::string* out) {
  if (req.source != nullptr) {
    out->append("spiffe://").append(req.source->trust_domain);
    out->append("/ns/").append(req.source->ns).append("/sa/").append(req.source->sa);
    return;
  }
  out->append("plaintext ").append(req.source_ip.empty() ? "?" : req.source_ip.ToString());
}

void AppendDestination(const proxy::AuthzRequest& req, std::string* out) {
  if (req.destination != nullptr) {
    out->append(req.destination->ns).append("/").append(req.destination->name);
  } else {
    out->append("a non-mesh destination");
  }
  char port[8];
  auto [end, ec] = std::to_chars(port, port + sizeof(port), req.port);
  out->append(":").append(port, ec == std::errc() ? end : port);
}

proxy::AuthzDecision ByPolicy(bool allow, const CompiledPolicy& p, const char* suffix = "") {
  proxy::AuthzDecision d;
  d.allow = allow;
  d.reason.reserve(64 + p.id.size());
  d.reason.append(allow ? "allowed" : "denied").append(" by TrafficPermission ").append(p.id).append(suffix);
  d.policy = p.id;
  return d;
}

void AppendRequest(const proxy::AuthzRequest& req, std::string* out) {
  if (req.http == nullptr) return;
  out->append(req.http->method).append(" ").append(req.http->path.substr(0, 256)).append(" from ");
}

proxy::AuthzDecision Unmatched(bool allow, const char* policy, const char* verb, const char* suffix,
                               const proxy::AuthzRequest& req) {
  proxy::AuthzDecision d;
  d.allow = allow;
  d.reason.reserve(160);
  d.reason.append("no TrafficPermission ").append(verb).append(" ");
  AppendRequest(req, &d.reason);
  AppendSource(req, &d.reason);
  d.reason.append(" to ");
  AppendDestination(req, &d.reason);
  d.reason.append(suffix);
  d.policy = policy;
  return d;
}

// A connection let through whose requests HTTP rules decide: the proxy parses and asks again per request.
proxy::AuthzDecision PerRequest(proxy::AuthzDecision d, const CompiledPolicy* rules) {
  d.per_request = true;
  d.reason.append("; HTTP rules apply per request (TrafficPermission ").append(rules->id).append(")");
  return d;
}

}  // namespace

bool PolicySet::Protected::IsHttpPort(uint16_t port) const {
  return std::binary_search(http_ports.begin(), http_ports.end(), port);
}

const PolicySet::Protected* PolicySet::Find(const Workload* destination) const {
  if (destination == nullptr || destination->ips.empty()) return nullptr;
  auto it = by_ip_.find(destination->ips.front());
  if (it == by_ip_.end()) return nullptr;
  for (const auto& pr : it->second) {
    if (pr.ns == destination->ns && pr.name == destination->name) return &pr;
  }
  return nullptr;
}

proxy::AuthzDecision PolicySet::Evaluate(const proxy::AuthzRequest& req) const {
  bool allow_policy_applies = false;
  const CompiledPolicy* pending_deny = nullptr;   // a connection some of whose requests an http DENY may deny
  const CompiledPolicy* pending_allow = nullptr;  // a connection some of whose requests an http ALLOW may allow
  const CompiledPolicy* not_http = nullptr;       // an http ALLOW that matched the source on a port that is not HTTP
  if (const Protected* pr = Find(req.destination)) {
    const bool http_port = pr->has_http && pr->IsHttpPort(req.port);
    for (const CompiledPolicy* p : pr->deny) {
      if (!p->MatchesPort(req.port) || !p->MatchesSource(req, trust_domain_)) continue;
      if (!p->has_http()) return ByPolicy(false, *p);
      if (!http_port) return ByPolicy(false, *p, " (its HTTP rules cannot be checked on a port that is not HTTP)");
      if (req.http == nullptr) {
        if (pending_deny == nullptr) pending_deny = p;
      } else if (p->MatchesRequest(*req.http)) {
        return ByPolicy(false, *p);
      }
    }
    for (const CompiledPolicy* p : pr->allow) {
      if (!p->MatchesPort(req.port)) continue;
      allow_policy_applies = true;
      if (!p->MatchesSource(req, trust_domain_)) continue;
      if (!p->has_http()) {
        proxy::AuthzDecision d = ByPolicy(true, *p);
        return pending_deny != nullptr ? PerRequest(std::move(d), pending_deny) : d;
      }
      if (!http_port) {
        if (not_http == nullptr) not_http = p;
      } else if (req.http == nullptr) {
        if (pending_allow == nullptr) pending_allow = p;
      } else if (p->MatchesRequest(*req.http)) {
        return ByPolicy(true, *p);
      }
    }
  }
  if (pending_allow != nullptr) {
    proxy::AuthzDecision d;
    d.allow = true;
    d.policy = pending_allow->id;
    d.reason = "only some requests allowed";
    return PerRequest(std::move(d), pending_allow);
  }
  if (allow_policy_applies) {
    proxy::AuthzDecision d = Unmatched(false, kImplicitDenyPolicy, "allows", "", req);
    if (not_http != nullptr) {
      d.reason.append(" (TrafficPermission ")
          .append(not_http->id)
          .append(
              " allows HTTP requests only, and this port "
              "is not HTTP)");
    }
    return d;
  }
  proxy::AuthzDecision d = Unmatched(default_allow_, kMeshDefaultPolicy, "matches",
                                     default_allow_ ? "; mesh default is ALLOW" : "; mesh default is DENY", req);
  return d.allow && pending_deny != nullptr ? PerRequest(std::move(d), pending_deny) : d;
}

}  // namespace zm::agent::policy
