#include "agent/admin/config_dump.h"

#include <algorithm>

namespace zm::admin {
namespace {

nlohmann::json IpsJson(const std::vector<net::IpAddr>& ips) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& ip : ips) out.push_back(ip.ToString());
  return out;
}

}  // namespace

nlohmann::json WorkloadJson(const agent::MeshSnapshot& snap, const agent::Workload& w) {
  return {{"name", w.name},
          {"namespace", w.ns},
          {"serviceAccount", w.service_account},
          {"node", w.node},
          {"ip", w.ips.empty() ? "" : w.ips.front().ToString()},
          {"ips", IpsJson(w.ips)},
          {"enrolled", w.enrolled},
          {"mode", agent::MeshModeName(w.mode)},
          {"local", snap.IsLocal(w)},
          {"identity", w.enrolled ? snap.IdentityOf(w).ToString() : ""}};
}

nlohmann::json ConfigDump(const ConfigDumpInput& in) {
  nlohmann::json out = {{"config_version", in.config_version}, {"ready", in.ready}};
  if (in.snapshot) {
    const agent::MeshSnapshot& s = *in.snapshot;
    std::vector<const agent::Workload*> ws;
    for (const auto& w : s.workloads()) ws.push_back(&w);
    std::sort(ws.begin(), ws.end(),
              [](auto* a, auto* b) { return std::tie(a->ns, a->name) < std::tie(b->ns, b->name); });
    nlohmann::json workloads = nlohmann::json::array();
    for (const auto* w : ws) workloads.push_back(WorkloadJson(s, *w));
    out["snapshot"] = {{"node", s.node()},
                       {"trust_domain", s.trust_domain()},
                       {"default_mode", agent::MeshModeName(s.default_mode())},
                       {"workloads", std::move(workloads)},
                       {"services", in.services}};
  } else {
    out["snapshot"] = nullptr;
  }
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& c : in.identities) {
    ids.push_back({{"identity", c.identity}, {"workloads", c.workloads}, {"certificate_loaded", c.present}});
  }
  out["local_identities"] = std::move(ids);
  nlohmann::json att = nlohmann::json::array();
  for (const auto& a : in.attachments) {
    att.push_back({{"ifname", a.ifname},
                   {"ifindex", a.ifindex},
                   {"role", a.role == agent::bpf::IfaceRole::kUplink ? "uplink" : "pod"},
                   {"link_id", a.link_id},
                   {"prog_id", a.prog_id},
                   {"repairs", a.repairs},
                   {"last_repair_unix", a.last_repair_unix},
                   {"last_repair", a.last_repair},
                   {"hook", a.tc ? "tc" : "tcx"}});
  }
  out["bpf"] = {
      {"pin_dir", in.pin_dir},
      {"attachments", std::move(att)},
      {"listeners", {{"outbound", in.listeners[0]}, {"hbone", in.listeners[1]}, {"plaintext", in.listeners[2]}}},
      {"listeners6", {{"outbound", in.listeners6[0]}, {"hbone", in.listeners6[1]}, {"plaintext", in.listeners6[2]}}}};
  if (in.capture) {
    const auto& c = *in.capture;
    out["bpf"]["stats"] = {{"captured_outbound", c.captured_outbound},
                           {"captured_hbone", c.captured_hbone},
                           {"captured_plaintext", c.captured_plaintext},
                           {"assigned_established", c.assigned_established},
                           {"dropped_fail_closed", c.dropped_fail_closed},
                           {"assign_errors", c.assign_errors},
                           {"passed_fail_open", c.passed_fail_open},
                           {"dropped_orphan", c.dropped_orphan},
                           {"dropped_node_plaintext", c.dropped_node_plaintext},
                           {"passed_probe", c.passed_probe},
                           {"dropped_fragment", c.dropped_fragment},
                           {"dropped_ipv6", c.dropped_ipv6},
                           {"dropped_udp", c.dropped_udp},
                           {"attach_repairs", c.attach_repairs}};
  }
  return out;
}

}  // namespace zm::admin
