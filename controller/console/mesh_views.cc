#include "controller/console/mesh_views.h"

#include <map>
#include <set>

#include "controller/manifest/every_address.h"
#include "tools/meshctl/route_views.h"

namespace zm::ctrl::console {

namespace v1 = zeromesh::v1;
using nlohmann::json;

namespace {

std::string RefNamespace(const std::string& ns, const std::string& owner_ns) {
  return ns.empty() ? owner_ns : ns;
}

// Connections the agents counted to each destination workload ("ns/name"), all sources together.
std::map<std::string, uint64_t> ConnectionsByDestination(const std::vector<TrafficPair>& traffic) {
  std::map<std::string, uint64_t> out;
  for (const auto& p : traffic) out[p.destination] += p.connections_total;
  return out;
}

}  // namespace

json WorkloadsView(const MeshInputs& in) {
  const MeshDefaults d = DefaultsOf(in.resources);
  json list = json::array();
  for (const auto& r : in.resources.resources()) {
    if (!r.has_workload()) continue;
    const auto& w = r.workload();
    json labels = json::object();
    for (const auto& [k, v] : w.labels()) labels[k] = v;
    list.push_back({{"namespace", w.namespace_()},
                    {"name", w.name()},
                    {"node", w.node()},
                    {"ip", w.ip()},
                    {"ips", manifest::EveryIp(w)},  // a dual-stack pod's both addresses, ip first
                    {"service_account", w.service_account()},
                    {"identity", IdentityOf(w, d.trust_domain)},
                    {"enrolled", w.enrolled()},
                    {"mode", ModeName(ModeOf(w, d))},
                    {"labels", labels}});
  }
  return {{"workloads", list}};
}

json NamespacesView(const MeshInputs& in) {
  const MeshDefaults d = DefaultsOf(in.resources);
  struct Count {
    int workloads = 0, enrolled = 0;
    std::set<std::string> modes;
  };
  std::map<std::string, Count> by_ns;
  for (const auto& r : in.resources.resources()) {
    if (!r.has_workload()) continue;
    Count& c = by_ns[r.workload().namespace_()];
    c.workloads++;
    c.enrolled += r.workload().enrolled();
    if (r.workload().enrolled()) c.modes.insert(ModeName(ModeOf(r.workload(), d)));
  }
  json list = json::array();
  for (const auto& [ns, c] : by_ns) {
    std::string mode = c.modes.size() == 1 ? *c.modes.begin() : c.modes.empty() ? "" : "mixed";
    list.push_back({{"name", ns},
                    {"workloads", c.workloads},
                    {"enrolled", c.enrolled},
                    {"mode", mode},
                    {"namespace_enrolled", c.workloads > 0 && c.enrolled == c.workloads}});
  }
  return {{"namespaces", list}};
}

json ServicesView(const MeshInputs& in) {
  std::map<std::string, const v1::Service*> services;  // "ns/name"
  for (const auto& r : in.resources.resources()) {
    if (r.has_service()) services[r.service().namespace_() + "/" + r.service().name()] = &r.service();
  }
  const auto measured = ConnectionsByDestination(in.traffic);
  // A backend Service's measured share: the connections the agents counted to the workloads behind it.
  auto backend_connections = [&](const std::string& key) -> uint64_t {
    auto it = services.find(key);
    if (it == services.end()) return 0;
    uint64_t n = 0;
    std::set<std::string> seen;
    for (const auto& e : it->second->endpoints()) {
      if (e.workload().empty() || !seen.insert(e.workload()).second) continue;
      auto m = measured.find(e.workload());
      if (m != measured.end()) n += m->second;
    }
    return n;
  };
  std::map<std::string, json> routes_by_service;
  for (const auto& r : in.resources.resources()) {
    if (!r.has_tcp_route()) continue;
    const auto& route = r.tcp_route();
    for (const auto& parent : route.parent_refs()) {
      if (!parent.kind().empty() && parent.kind() != "Service") continue;
      json backends = json::array();
      uint64_t total_weight = 0, total_measured = 0;
      for (const auto& rule : route.rules()) {
        for (const auto& b : rule.backend_refs()) {
          total_weight += b.weight();
          total_measured += backend_connections(RefNamespace(b.namespace_(), route.namespace_()) + "/" + b.name());
        }
      }
      for (const auto& rule : route.rules()) {
        for (const auto& b : rule.backend_refs()) {
          const std::string ns = RefNamespace(b.namespace_(), route.namespace_());
          const uint64_t n = backend_connections(ns + "/" + b.name());
          backends.push_back(
              {{"name", b.name()},
               {"namespace", ns},
               {"port", b.port()},
               {"weight", b.weight()},
               {"percent", total_weight ? 100.0 * b.weight() / static_cast<double>(total_weight) : 0.0},
               {"measured_connections", n},
               {"measured_percent", total_measured ? 100.0 * n / static_cast<double>(total_measured) : 0.0}});
        }
      }
      routes_by_service[RefNamespace(parent.namespace_(), route.namespace_()) + "/" + parent.name()].push_back(
          {{"name", route.name()}, {"namespace", route.namespace_()}, {"port", parent.port()}, {"backends", backends}});
    }
  }
  // HTTPRoutes and GRPCRoutes, as `meshctl routes` shows them (rules with matches and weighted backends); the
  // measured split above is per connection, so it is drawn for TCPRoutes only.
  std::map<std::string, json> l7_by_service;
  for (const auto& route : meshctl::RoutesJson(in.resources)) {
    if (route["kind"] == "TCPRoute") continue;
    std::set<std::string> parents;
    for (const auto& p : route["parents"]) parents.insert(p["service"].get<std::string>());
    for (const auto& parent : parents) l7_by_service[parent].push_back(route);
  }
  json list = json::array();
  for (const auto& [key, s] : services) {
    json ports = json::array(), endpoints = json::array();
    for (const auto& p : s->ports()) {
      ports.push_back({{"name", p.name()},
                       {"port", p.port()},
                       {"target_port", p.target_port() ? p.target_port() : p.port()},
                       {"protocol", meshctl::ProtocolName(p.resolved_protocol())}});
    }
    for (const auto& e : s->endpoints()) {
      endpoints.push_back({{"ip", e.ip()}, {"workload", e.workload()}, {"node", e.node()}});
    }
    auto routes = routes_by_service.find(key);
    auto l7 = l7_by_service.find(key);
    list.push_back({{"namespace", s->namespace_()},
                    {"name", s->name()},
                    {"vip", s->vip()},
                    {"vips", manifest::EveryVip(*s)},
                    {"ports", ports},
                    {"endpoints", endpoints},
                    {"routes", routes == routes_by_service.end() ? json::array() : routes->second},
                    {"l7_routes", l7 == l7_by_service.end() ? json::array() : l7->second}});
  }
  return {{"services", list}};
}

json TrafficView(const MeshInputs& in) {
  json pairs = json::array();
  for (const auto& p : in.traffic) {
    pairs.push_back({{"source", p.source},
                     {"destination", p.destination},
                     {"source_principal", p.source_principal},
                     {"mtls", p.mtls},
                     {"connections_per_second", p.connections_per_second},
                     {"bytes_per_second", p.bytes_per_second},
                     {"errors_per_second", p.errors_per_second},
                     {"connections_total", p.connections_total},
                     {"bytes_total", p.bytes_total},
                     {"denials_total", p.denials_total}});
  }
  return {{"updated_unix", in.now_unix}, {"pairs", pairs}};
}

}  // namespace zm::ctrl::console
