#include "agent/policy/compiled_policy.h"

#include <algorithm>

namespace zm::agent::policy {

bool CompiledPolicy::MatchesPort(uint16_t port) const {
  return ports.empty() || std::find(ports.begin(), ports.end(), port) != ports.end();
}

bool CompiledPolicy::MatchesRequest(const proxy::HttpRequestAttrs& req) const {
  return std::any_of(http.begin(), http.end(), [&](const HttpRule& r) { return r.Matches(req); });
}

bool CompiledPolicy::MatchesSource(const proxy::AuthzRequest& req, std::string_view trust_domain) const {
  if (any_source) return true;
  for (const auto& b : ip_blocks) {
    if (b.Contains(req.source_ip)) return true;
  }
  // Everything below needs a verified identity: a plaintext peer is only ever matched by its address.
  const tls::SpiffeId* id = req.source;
  if (id == nullptr) return false;
  for (const auto& want : identities) {
    if (want == *id) return true;
  }
  for (const auto& ns : namespaces) {
    if (ns == id->ns) return true;
  }
  // The source IP alone is not proof: the peer must also hold the identity of the workload at that IP.
  if (id->trust_domain != trust_domain) return false;
  auto [lo, hi] = std::equal_range(selected.begin(), selected.end(), req.source_ip, SelectedSource::ByIp{});
  for (auto it = lo; it != hi; ++it) {
    if (it->ns == id->ns && it->service_account == id->sa) return true;
  }
  return false;
}

}  // namespace zm::agent::policy
