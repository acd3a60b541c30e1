// PolicySet::Evaluate: the per-connection decision and its human-readable reason.
#include "agent/policy/policy_set.h"

#include <arpa/inet.h>

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
  char ip[INET_ADDRSTRLEN] = "?";
  in_addr a{req.source_ip};
  inet_ntop(AF_INET, &a, ip, sizeof(ip));
  out->append("plaintext ").append(ip);
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

proxy::AuthzDecision ByPolicy(bool allow, const CompiledPolicy& p) {
  proxy::AuthzDecision d;
  d.allow = allow;
  d.reason.reserve(64 + p.id.size());
  d.reason.append(allow ? "allowed" : "denied").append(" by TrafficPermission ").append(p.id);
  d.policy = p.id;
  return d;
}

proxy::AuthzDecision Unmatched(bool allow, const char* policy, const char* verb, const char* suffix,
                               const proxy::AuthzRequest& req) {
  proxy::AuthzDecision d;
  d.allow = allow;
  d.reason.reserve(160);
  d.reason.append("no TrafficPermission ").append(verb).append(" ");
  AppendSource(req, &d.reason);
  d.reason.append(" to ");
  AppendDestination(req, &d.reason);
  d.reason.append(suffix);
  d.policy = policy;
  return d;
}

}  // namespace

const PolicySet::Protected* PolicySet::Find(const Workload* destination) const {
  if (destination == nullptr) return nullptr;
  auto it = by_ip_.find(destination->ip);
  if (it == by_ip_.end()) return nullptr;
  for (const auto& pr : it->second) {
    if (pr.ns == destination->ns && pr.name == destination->name) return &pr;
  }
  return nullptr;
}

proxy::AuthzDecision PolicySet::Evaluate(const proxy::AuthzRequest& req) const {
  bool allow_policy_applies = false;
  if (const Protected* pr = Find(req.destination)) {
    for (const CompiledPolicy* p : pr->deny) {
      if (p->MatchesPort(req.port) && p->MatchesSource(req, trust_domain_)) return ByPolicy(false, *p);
    }
    for (const CompiledPolicy* p : pr->allow) {
      if (!p->MatchesPort(req.port)) continue;
      allow_policy_applies = true;
      if (p->MatchesSource(req, trust_domain_)) return ByPolicy(true, *p);
    }
  }
  if (allow_policy_applies) return Unmatched(false, kImplicitDenyPolicy, "allows", "", req);
  return Unmatched(default_allow_, kMeshDefaultPolicy, "matches",
                   default_allow_ ? "; mesh default is ALLOW" : "; mesh default is DENY", req);
}

}  // namespace zm::agent::policy
