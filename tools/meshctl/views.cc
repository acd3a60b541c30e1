#include "tools/meshctl/views.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "tools/meshctl/output.h"
#include "tools/meshctl/route_views.h"

namespace zm::meshctl {
namespace v1 = zeromesh::v1;
namespace {

const char* ModeName(v1::Mode m) {
  return m == v1::STRICT ? "STRICT" : m == v1::PERMISSIVE ? "PERMISSIVE" : "default";
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string Labels(const google::protobuf::Map<std::string, std::string>& m) {
  std::vector<std::string> kv;
  for (const auto& [k, v] : m) kv.push_back(k + "=" + v);
  std::sort(kv.begin(), kv.end());
  return Join(kv, ",");
}

// Every address (the list, else the single field): a dual-stack pod or Service has one per family.
std::vector<std::string> Every(const std::string& one, const google::protobuf::RepeatedPtrField<std::string>& many) {
  if (!many.empty()) return {many.begin(), many.end()};
  return one.empty() ? std::vector<std::string>{} : std::vector<std::string>{one};
}

bool Selects(const v1::WorkloadSelector& sel, const v1::Workload& w) {
  for (const auto& [k, v] : sel.match_labels()) {
    auto it = w.labels().find(k);
    if (it == w.labels().end() || it->second != v) return false;
  }
  return true;
}

std::vector<std::string> SourceList(const v1::PermissionSources& s) {
  std::vector<std::string> out;
  for (const auto& id : s.identities()) out.push_back(id);
  for (const auto& ns : s.namespaces()) out.push_back("ns:" + ns);
  for (const auto& sel : s.workload_selectors()) {
    out.push_back("pods:" + (sel.namespace_().empty() ? "" : sel.namespace_() + "/") + Labels(sel.match_labels()));
  }
  for (const auto& b : s.ip_blocks()) out.push_back("ip:" + b);
  if (out.empty()) out.push_back("any");
  return out;
}

}  // namespace

nlohmann::json ProtoJson(const google::protobuf::Message& msg) {
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(msg, &text).ok()) return {{"error", "unprintable"}};
  return nlohmann::json::parse(text, nullptr, false);
}

nlohmann::json WorkloadsJson(const v1::ResourceSet& rs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rs.resources()) {
    if (!r.has_workload()) continue;
    const auto& w = r.workload();
    out.push_back({{"namespace", w.namespace_()},
                   {"name", w.name()},
                   {"node", w.node()},
                   {"ip", w.ip()},
                   {"ips", Every(w.ip(), w.ips())},
                   {"service_account", w.service_account()},
                   {"enrolled", w.enrolled()},
                   {"mode", ModeName(w.mode())},
                   {"labels", Labels(w.labels())}});
  }
  return out;
}

std::string RenderWorkloads(const nlohmann::json& j) {
  if (j.empty()) return "no workloads\n";
  Table t({"NAMESPACE", "NAME", "NODE", "IP", "SERVICE ACCOUNT", "ENROLLED", "MODE"});
  t.KeepWhole(3);
  for (const auto& w : j) {
    t.Add({w["namespace"], w["name"], w["node"],
           Join(w.value("ips", std::vector<std::string>{w["ip"].get<std::string>()}), ","), w["service_account"],
           w["enrolled"].get<bool>() ? "yes" : "no", w["mode"]});
  }
  return t.Render();
}

nlohmann::json ServicesJson(const v1::ResourceSet& rs) {
  const auto routes = RoutesByParent(rs);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rs.resources()) {
    if (!r.has_service()) continue;
    const auto& s = r.service();
    nlohmann::json ports = nlohmann::json::array(), eps = nlohmann::json::array();
    for (const auto& p : s.ports()) {
      ports.push_back({{"name", p.name()},
                       {"port", p.port()},
                       {"target_port", p.target_port()},
                       {"app_protocol", p.app_protocol()},
                       {"protocol", ProtocolName(p.resolved_protocol())}});
    }
    for (const auto& e : s.endpoints()) eps.push_back({{"ip", e.ip()}, {"workload", e.workload()}, {"node", e.node()}});
    auto attached = routes.find(s.namespace_() + "/" + s.name());
    out.push_back({{"namespace", s.namespace_()},
                   {"name", s.name()},
                   {"vip", s.vip()},
                   {"vips", Every(s.vip(), s.vips())},
                   {"ports", ports},
                   {"endpoints", eps},
                   {"routes", attached == routes.end() ? std::vector<std::string>{} : attached->second}});
  }
  return out;
}

std::string RenderServices(const nlohmann::json& j) {
  if (j.empty()) return "no services\n";
  Table t({"NAMESPACE", "NAME", "VIP", "PORTS", "ENDPOINTS", "ROUTES"});
  t.KeepWhole(2);
  for (const auto& s : j) {
    std::vector<std::string> ports, eps;
    for (const auto& p : s["ports"]) {
      const std::string proto = p.value("protocol", "TCP");
      ports.push_back(std::to_string(p["port"].get<uint32_t>()) + "->" +
                      std::to_string(p["target_port"].get<uint32_t>()) + (proto == "TCP" ? "" : "/" + proto));
    }
    for (const auto& e : s["endpoints"]) eps.push_back(e["ip"].get<std::string>());
    const auto routes = s.value("routes", std::vector<std::string>{});
    const auto vips = s.value("vips", std::vector<std::string>{s["vip"].get<std::string>()});
    t.Add({s["namespace"], s["name"], Join(vips, ","), Join(ports, ","), eps.empty() ? "<none>" : Join(eps, ","),
           routes.empty() ? "-" : Join(routes, ",")});
  }
  return t.Render();
}

nlohmann::json PoliciesJson(const v1::ResourceSet& rs) {
  std::string default_policy = "ALLOW";
  for (const auto& r : rs.resources()) {
    if (r.has_mesh_config()) default_policy = r.mesh_config().default_policy() == v1::DENY ? "DENY" : "ALLOW";
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rs.resources()) {
    if (!r.has_workload()) continue;
    const auto& w = r.workload();
    nlohmann::json rules = nlohmann::json::array();
    for (bool deny : {true, false}) {  // DENY rules are evaluated before ALLOW rules
      for (const auto& pr : rs.resources()) {
        if (!pr.has_traffic_permission()) continue;
        const auto& tp = pr.traffic_permission();
        if ((tp.action() == v1::DENY) != deny || tp.namespace_() != w.namespace_()) continue;
        if (!Selects(tp.destination().selector(), w)) continue;
        std::vector<uint32_t> ports(tp.destination().ports().begin(), tp.destination().ports().end());
        rules.push_back({{"policy", tp.namespace_() + "/" + tp.name()},
                         {"action", deny ? "DENY" : "ALLOW"},
                         {"sources", SourceList(tp.sources())},
                         {"ports", ports}});
      }
    }
    out.push_back({{"workload", w.namespace_() + "/" + w.name()},
                   {"enrolled", w.enrolled()},
                   {"rules", rules},
                   {"default", rules.empty() ? default_policy : (default_policy + " (when no rule matches)")}});
  }
  return out;
}

std::string RenderPolicies(const nlohmann::json& j) {
  if (j.empty()) return "no workloads\n";
  Table t({"WORKLOAD", "POLICY", "ACTION", "FROM", "PORTS"});
  for (const auto& w : j) {
    for (const auto& r : w["rules"]) {
      std::vector<std::string> ports;
      for (const auto& p : r["ports"]) ports.push_back(std::to_string(p.get<uint32_t>()));
      t.Add({w["workload"], r["policy"], r["action"], Join(r["sources"].get<std::vector<std::string>>(), ","),
             ports.empty() ? "any" : Join(ports, ",")});
    }
    t.Add({w["workload"], "(default)", w["default"].get<std::string>().substr(0, 5), "any", "any"});
  }
  return t.Render();
}

nlohmann::json CertsJson(const v1::MeshStatus& st, int64_t now_unix, int64_t warn_seconds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& a : st.agents()) {
    for (const auto& c : a.last_report().certs()) {
      int64_t left = c.not_after_unix() - now_unix;
      out.push_back({{"node", a.node()},
                     {"spiffe_id", c.spiffe_id()},
                     {"not_after_unix", c.not_after_unix()},
                     {"seconds_left", left},
                     {"expiring", left < warn_seconds}});
    }
  }
  return out;
}

std::string RenderCerts(const nlohmann::json& j) {
  if (j.empty()) return "no certificates reported\n";
  Table t({"NODE", "IDENTITY", "EXPIRES IN", "STATUS"});
  for (const auto& c : j) {
    int64_t left = c["seconds_left"].get<int64_t>();
    t.Add({c["node"], c["spiffe_id"], HumanDuration(left),
           left <= 0                   ? "EXPIRED"
           : c["expiring"].get<bool>() ? "EXPIRING"
                                       : "ok"});
  }
  return t.Render();
}

nlohmann::json ConfigDumpJson(const v1::ResourceSet& rs, const v1::MeshStatus& st, const std::string& node) {
  const v1::AgentState* agent = nullptr;
  for (const auto& a : st.agents()) {
    if (a.node() == node) agent = &a;
  }
  bool has_workloads = false;
  for (const auto& r : rs.resources())
    has_workloads = has_workloads || (r.has_workload() && r.workload().node() == node);
  if (!agent && !has_workloads) return nullptr;
  nlohmann::json out = {{"node", node}, {"epoch", rs.epoch()}, {"version", rs.version()}};
  if (agent) {
    out["stream"] = {{"connected", agent->connected()},         {"sent_version", agent->sent_version()},
                     {"acked_version", agent->acked_version()}, {"nacked_version", agent->nacked_version()},
                     {"nack_error", agent->nack_error()},       {"last_report_unix", agent->last_report_unix()}};
    out["last_report"] = ProtoJson(agent->last_report());
  } else {
    out["stream"] = nullptr;
  }
  out["resources"] = nlohmann::json::array();
  for (const auto& r : rs.resources()) out["resources"].push_back(ProtoJson(r));
  return out;
}

}  // namespace zm::meshctl
