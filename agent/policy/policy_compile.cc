// PolicySet::Compile: resolves each TrafficPermission's selectors against the config's workloads once, so that
// evaluating a connection is lookups and comparisons only.
#include <algorithm>
#include <tuple>

#include "agent/control/address_list.h"
#include "agent/policy/policy_set.h"

namespace zm::agent::policy {
namespace v1 = zeromesh::v1;
namespace {

struct ConfigWorkload {
  const v1::Workload* w;
  std::vector<net::IpAddr> ips;  // the primary first (control::WorkloadIps), as the snapshot's Workload::ips
};

bool LabelsMatch(const v1::WorkloadSelector& sel, const v1::Workload& w) {
  for (const auto& [k, v] : sel.match_labels()) {
    auto it = w.labels().find(k);
    if (it == w.labels().end() || it->second != v) return false;
  }
  return true;
}

bool CompileSources(const v1::TrafficPermission& tp, const std::vector<ConfigWorkload>& workloads, CompiledPolicy* p,
                    std::string* error) {
  const auto& src = tp.sources();
  for (const auto& s : src.identities()) {
    tls::SpiffeId id;
    std::string why;
    if (!tls::ParseSpiffeId(s, &id, &why)) {
      *error = "identity '" + s + "': " + why;
      return false;
    }
    p->identities.push_back(std::move(id));
  }
  p->namespaces.assign(src.namespaces().begin(), src.namespaces().end());
  for (const auto& cidr : src.ip_blocks()) {
    // Host bits are cleared, as the controller accepts them.
    std::string why;
    std::optional<net::Cidr> b = net::Cidr::Parse(cidr, &why);
    if (!b) {
      *error = "'" + cidr + "' is not a CIDR: " + why;
      return false;
    }
    p->ip_blocks.push_back(*b);
  }
  for (const auto& sel : src.workload_selectors()) {
    const std::string& ns = sel.namespace_().empty() ? tp.namespace_() : sel.namespace_();
    for (const auto& cw : workloads) {
      if (cw.w->namespace_() == ns && LabelsMatch(sel, *cw.w)) {
        for (const auto& ip : cw.ips) p->selected.push_back({ip, cw.w->namespace_(), cw.w->service_account()});
      }
    }
  }
  // Overlapping selectors pick a workload twice; keep one entry per (ip, identity).
  std::sort(p->selected.begin(), p->selected.end(), [](const SelectedSource& a, const SelectedSource& b) {
    return std::tie(a.ip, a.ns, a.service_account) < std::tie(b.ip, b.ns, b.service_account);
  });
  p->selected.erase(std::unique(p->selected.begin(), p->selected.end(),
                                [](const SelectedSource& a, const SelectedSource& b) {
                                  return a.ip == b.ip && a.ns == b.ns && a.service_account == b.service_account;
                                }),
                    p->selected.end());
  p->any_source = src.identities().empty() && src.namespaces().empty() && src.ip_blocks().empty() &&
                  src.workload_selectors().empty();
  return true;
}

bool CompilePolicy(const v1::TrafficPermission& tp, const std::vector<ConfigWorkload>& workloads, CompiledPolicy* p,
                   std::string* error) {
  if (tp.namespace_().empty() || tp.name().empty()) {
    *error = "TrafficPermission '" + tp.namespace_() + "/" + tp.name() + "': needs a namespace and a name";
    return false;
  }
  p->id = tp.namespace_() + "/" + tp.name();
  // Unspecified means ALLOW, as an Istio AuthorizationPolicy without an action.
  p->deny = tp.action() == v1::DENY;
  const auto& dst = tp.destination();
  if (!dst.selector().namespace_().empty() && dst.selector().namespace_() != tp.namespace_()) {
    *error = p->id + ": destination selector names namespace '" + dst.selector().namespace_() +
             "' (a TrafficPermission only protects workloads of its own namespace)";
    return false;
  }
  for (uint32_t port : dst.ports()) {
    if (port == 0 || port > 65535) {
      *error = p->id + ": destination port " + std::to_string(port) + " out of range 1..65535";
      return false;
    }
    auto port16 = static_cast<uint16_t>(port);
    if (std::find(p->ports.begin(), p->ports.end(), port16) == p->ports.end()) p->ports.push_back(port16);
  }
  std::string why;
  if (!CompileSources(tp, workloads, p, &why) || !CompileHttpRules(tp, &p->http, &why)) {
    *error = p->id + ": " + why;
    return false;
  }
  return true;
}

// The target ports of |pr|'s workload whose requests the destination proxy parses: those a Service selecting it
// declares HTTP/1.1, HTTP/2 or gRPC (resolved_protocol), as the destination handler picks them (proxy/destination_l7).
// Where Services disagree the proxy still parses every connection: HTTP/1.1 and HTTP/2 are told apart by the HTTP/2
// preface, and with per-request decisions bytes that are not HTTP are refused, so a TCP declaration there opens
// nothing the http rules close.
void ResolveHttpPorts(const control::ConfigState& state, const std::vector<net::IpAddr>& ips,
                      const std::string& workload_key, std::vector<uint16_t>* http_ports) {
  for (const auto& [key, r] : state.resources) {
    if (!r.has_service()) continue;
    bool selects = false;
    for (const auto& e : r.service().endpoints()) {
      std::optional<net::IpAddr> eip = e.workload().empty() ? net::IpAddr::Parse(e.ip()) : std::nullopt;
      bool same = !e.workload().empty() ? e.workload() == workload_key
                                        : eip && std::find(ips.begin(), ips.end(), *eip) != ips.end();
      if (same) {
        selects = true;
        break;
      }
    }
    if (!selects) continue;
    for (const auto& sp : r.service().ports()) {
      const v1::AppProtocol proto = sp.resolved_protocol();
      if (proto != v1::APP_HTTP && proto != v1::APP_HTTP2 && proto != v1::APP_GRPC) continue;
      http_ports->push_back(static_cast<uint16_t>(sp.target_port() != 0 ? sp.target_port() : sp.port()));
    }
  }
  std::sort(http_ports->begin(), http_ports->end());
  http_ports->erase(std::unique(http_ports->begin(), http_ports->end()), http_ports->end());
}

}  // namespace

std::shared_ptr<const PolicySet> PolicySet::Compile(const control::ConfigState& state, std::string* error) {
  const v1::MeshConfig* mesh = state.mesh();
  if (mesh == nullptr) {
    *error = "config has no MeshConfig";
    return nullptr;
  }
  std::string why;
  if (!tls::ValidTrustDomain(mesh->trust_domain(), &why)) {
    *error = "MeshConfig trust domain: " + why;
    return nullptr;
  }
  std::shared_ptr<PolicySet> set(new PolicySet());
  set->trust_domain_ = mesh->trust_domain();
  set->default_allow_ = mesh->default_policy() != v1::DENY;

  std::vector<ConfigWorkload> workloads;
  for (const auto& [key, r] : state.resources) {
    if (!r.has_workload()) continue;
    ConfigWorkload cw{&r.workload(), {}};
    if (!control::WorkloadIps(*cw.w, &cw.ips, &why)) {
      *error = "workload " + cw.w->namespace_() + "/" + cw.w->name() + ": " + why;
      return nullptr;
    }
    workloads.push_back(std::move(cw));
  }

  std::vector<const v1::TrafficPermission*> tps;
  for (const auto& [key, r] : state.resources) {
    if (r.has_traffic_permission()) tps.push_back(&r.traffic_permission());
  }
  set->policies_.resize(tps.size());
  for (size_t i = 0; i < tps.size(); i++) {
    if (!CompilePolicy(*tps[i], workloads, &set->policies_[i], error)) return nullptr;
  }

  // Index by destination: the workloads of the policy's namespace its selector picks.
  for (size_t i = 0; i < tps.size(); i++) {
    const CompiledPolicy* p = &set->policies_[i];
    const auto& sel = tps[i]->destination().selector();
    for (const auto& cw : workloads) {
      if (cw.w->namespace_() != tps[i]->namespace_() || !LabelsMatch(sel, *cw.w)) continue;
      auto& list = set->by_ip_[cw.ips.front()];
      auto it = std::find_if(list.begin(), list.end(), [&](const Protected& pr) {
        return pr.ns == cw.w->namespace_() && pr.name == cw.w->name();
      });
      if (it == list.end())
        it = list.insert(list.end(), Protected{cw.w->namespace_(), cw.w->name(), {}, {}, false, {}});
      (p->deny ? it->deny : it->allow).push_back(p);
      if (p->has_http() && !it->has_http) {
        it->has_http = true;
        ResolveHttpPorts(state, cw.ips, cw.w->namespace_() + "/" + cw.w->name(), &it->http_ports);
      }
    }
  }
  return set;
}

}  // namespace zm::agent::policy
