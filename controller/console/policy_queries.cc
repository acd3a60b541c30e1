#include "controller/console/policy_queries.h"

#include "agent/control/config_state.h"
#include "agent/control/state_adapter.h"

namespace zm::ctrl::console {

namespace v1 = zeromesh::v1;
using nlohmann::json;

namespace {

// The address `from` connects to `to` with: its first one of a family `to` has (a dual-stack client reaches an
// IPv6-only pod over IPv6), else its first.
net::IpAddr AddressTowards(const agent::Workload& from, const agent::Workload& to) {
  for (const auto& a : from.ips) {
    for (const auto& b : to.ips) {
      if (a.family() == b.family()) return a;
    }
  }
  return from.ips.empty() ? net::IpAddr() : from.ips[0];
}

}  // namespace

std::unique_ptr<PolicyQueries> PolicyQueries::Build(const v1::ResourceSet& rs, std::string* error) {
  agent::control::ConfigState state;
  state.version = rs.version();
  state.epoch = rs.epoch();
  for (const auto& r : rs.resources()) state.resources[agent::control::ResourceKeyString(r)] = r;
  std::unique_ptr<PolicyQueries> q(new PolicyQueries());
  q->snap_ = agent::control::ToMeshSnapshot(state, "", error);
  if (!q->snap_) return nullptr;
  q->policy_ = agent::policy::PolicySet::Compile(state, error);
  if (!q->policy_) return nullptr;
  for (const auto& w : q->snap_->workloads()) q->by_key_[w.ns + "/" + w.name] = &w;
  for (const auto& r : rs.resources()) {
    if (!r.has_service() || r.service().ports().empty()) continue;
    const auto& p = r.service().ports(0);
    for (const auto& e : r.service().endpoints()) {
      if (!e.workload().empty()) q->first_port_.emplace(e.workload(), p.target_port() ? p.target_port() : p.port());
    }
  }
  return q;
}

const agent::Workload* PolicyQueries::Find(const std::string& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : it->second;
}

uint16_t PolicyQueries::FirstPort(const agent::Workload& w) const {
  auto it = first_port_.find(w.ns + "/" + w.name);
  return it == first_port_.end() ? 0 : it->second;
}

json PolicyQueries::Decide(const agent::Workload* source, const net::IpAddr& source_ip, const agent::Workload& to,
                           uint16_t port) const {
  json explain = json::array();
  const std::string to_key = to.ns + "/" + to.name;
  const bool mtls = source != nullptr && source->enrolled && to.enrolled;
  tls::SpiffeId id;
  if (source != nullptr) id = snap_->IdentityOf(*source);
  json out = {{"mtls", mtls}, {"source_identity", mtls ? id.ToString() : ""}, {"policy", ""}};
  if (!to.enrolled) {
    explain.push_back(to_key + " is not in the mesh: connections reach it directly and no mesh policy applies");
    out.update({{"allow", true}, {"reason", "destination outside the mesh"}, {"explain", explain}});
    return out;
  }
  if (mtls) {
    explain.push_back("the client is in the mesh: its node proxy connects over mTLS as " + id.ToString());
  } else {
    explain.push_back(source != nullptr ? source->ns + "/" + source->name +
                                              " is not in the mesh: it connects in plaintext, with no identity"
                                        : "a client outside the mesh connects in plaintext, with no identity");
    if (to.mode == agent::MeshMode::kStrict) {
      explain.push_back(to_key + " is STRICT: the destination node refuses plaintext before any policy is read");
      out.update({{"allow", false},
                  {"reason", "STRICT mode refuses plaintext"},
                  {"policy", "strict-mode"},
                  {"explain", explain}});
      return out;
    }
    explain.push_back(to_key + " is PERMISSIVE: plaintext is accepted and judged by source address");
  }
  proxy::AuthzRequest req;
  req.source = mtls ? &id : nullptr;
  // The address asked about, else the one the workload would connect from.
  req.source_ip = !source_ip.empty() || source == nullptr ? source_ip : AddressTowards(*source, to);
  req.destination = &to;
  req.port = port;
  proxy::AuthzDecision d = policy_->Evaluate(req);
  explain.push_back(d.reason);
  if (d.per_request) {
    explain.push_back(
        "HTTP rules apply: the destination node proxy decides each request by its method, path and "
        "headers, and answers 403 to the ones not allowed");
  }
  out.update({{"allow", d.allow},
              {"reason", d.reason},
              {"policy", d.policy},
              {"http_rules", d.per_request},
              {"explain", explain}});
  return out;
}

json PolicyQueries::Reach(const std::string& from, const std::string& to, uint16_t port, std::string* error) const {
  const agent::Workload* dst = Find(to);
  if (dst == nullptr) {
    *error = "no workload " + to + " (want namespace/name)";
    return nullptr;
  }
  const agent::Workload* src = nullptr;
  auto addr = net::IpAddr::Parse(from);
  if (addr) {
    src = snap_->Find(*addr);  // a workload's address (either family) is that workload
  } else if ((src = Find(from)) == nullptr) {
    *error = "no workload " + from + " (want namespace/name or an IPv4 or IPv6 address)";
    return nullptr;
  }
  json d = Decide(src, addr.value_or(net::IpAddr()), *dst, port ? port : FirstPort(*dst));
  d["from"] = from;
  d["to"] = to;
  return d;
}

json PolicyQueries::Who(const std::string& to, uint16_t port, std::string* error) const {
  const agent::Workload* dst = Find(to);
  if (dst == nullptr) {
    *error = "no workload " + to + " (want namespace/name)";
    return nullptr;
  }
  if (port == 0) port = FirstPort(*dst);
  json allowed = json::array(), denied = json::array();
  for (const auto& [key, w] : by_key_) {
    if (w == dst) continue;
    json d = Decide(w, net::IpAddr(), *dst, port);
    json entry = {{"workload", key},
                  {"identity", w->enrolled ? snap_->IdentityOf(*w).ToString() : ""},
                  {"policy", d["policy"]},
                  {"reason", d["reason"]}};
    (d["allow"].get<bool>() ? allowed : denied).push_back(std::move(entry));
  }
  // A documentation address (TEST-NET-1, or 2001:db8::1 for an IPv6-only pod) stands for any client outside the mesh.
  const bool v6_only = dst->ips.size() == 1 && dst->ips[0].is_v6();
  json outside = Decide(nullptr, *net::IpAddr::Parse(v6_only ? "2001:db8::1" : "192.0.2.1"), *dst, port);
  return {{"to", to},
          {"port", port},
          {"allowed", allowed},
          {"denied", denied},
          {"plaintext", {{"allow", outside["allow"]}, {"reason", outside["reason"]}}}};
}

json PolicyQueries::Effective() const {
  json list = json::array();
  size_t n = 0;
  for (const auto& [key, w] : by_key_) {
    if (!w->enrolled) continue;
    if (++n > kMaxEffective) break;
    std::string ignored;
    json who = Who(key, 0, &ignored);
    json allowed = json::array();
    for (const auto& a : who["allowed"]) allowed.push_back(a["workload"]);
    list.push_back({{"workload", key},
                    {"mode", w->mode == agent::MeshMode::kPermissive ? "PERMISSIVE" : "STRICT"},
                    {"port", who["port"]},
                    {"allowed", allowed},
                    {"denied", who["denied"]},
                    {"plaintext", who["plaintext"]["allow"].get<bool>() ? "allowed" : "refused"}});
  }
  return list;
}

}  // namespace zm::ctrl::console
