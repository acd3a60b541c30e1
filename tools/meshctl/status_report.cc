#include "tools/meshctl/status_report.h"

#include <map>
#include <set>

#include "tools/meshctl/output.h"
#include "tools/meshctl/protocol_conflicts.h"

namespace zm::meshctl {
namespace v1 = zeromesh::v1;
namespace {

void Finding(nlohmann::json& report, const char* list, const std::string& message, const std::string& hint,
             const std::string& node) {
  nlohmann::json p = {{"message", message}, {"hint", hint}};
  if (!node.empty()) p["node"] = node;
  report[list].push_back(std::move(p));
}

// Problems make the mesh unhealthy (exit code 1); warnings are things that healed or degrade nothing yet.
void Problem(nlohmann::json& report, const std::string& message, const std::string& hint,
             const std::string& node = "") {
  Finding(report, "problems", message, hint, node);
}

void Warning(nlohmann::json& report, const std::string& message, const std::string& hint, const std::string& node) {
  Finding(report, "warnings", message, hint, node);
}

// How long a repaired tcx attachment stays a warning: long enough for an operator to notice a fight over the chain.
constexpr int64_t kRepairWarnSeconds = 15 * 60;

const char* HealthName(v1::Health h) {
  switch (h) {
    case v1::HEALTHY:
      return "healthy";
    case v1::DEGRADED:
      return "degraded";
    case v1::UNHEALTHY:
      return "unhealthy";
    default:
      return "unknown";
  }
}

nlohmann::json AgentJson(const StatusInput& in, const v1::AgentState& a, uint64_t latest, nlohmann::json& report,
                         std::map<std::string, int>& pods_by_ns, nlohmann::json& soonest) {
  const auto& r = a.last_report();
  const std::string& node = a.node();
  bool reported = a.last_report_unix() > 0;
  int64_t age = reported ? in.now_unix - a.last_report_unix() : -1;
  nlohmann::json j = {{"node", node},
                      {"version", r.agent_version()},
                      {"connected", a.connected()},
                      {"config_version_applied", a.acked_version()},
                      {"config_version_latest", latest},
                      {"synced", a.connected() && latest > 0 && a.acked_version() == latest},
                      {"nacked_version", a.nacked_version()},
                      {"nack_error", a.nack_error()},
                      {"last_report_unix", a.last_report_unix()},
                      {"last_report_age_seconds", age},
                      {"health", reported ? HealthName(r.health()) : "unknown"},
                      {"fail_mode", r.fail_mode()},
                      {"errors", r.errors()},
                      {"enrolled_pods", r.enrolled_pods()},
                      {"attachments", nlohmann::json::array()},
                      {"certs", nlohmann::json::array()}};
  // Problems, most fundamental first: an agent that is gone makes the rest of its report stale.
  if (!a.connected()) {
    Problem(report,
            "agent on node " + node + " is disconnected from the controller" +
                (reported ? " (last report " + HumanDuration(age) + " ago)" : ""),
            "check that mesh-agent runs on " + node + " (its log says why it stopped); it reconnects on its own", node);
  } else if (!reported || age > in.stale_seconds) {
    Problem(report,
            "agent on node " + node + (reported ? " has not reported for " + HumanDuration(age) : " never reported"),
            "check the mesh-agent log on " + node + " for Status.Report errors", node);
  }
  if (!a.nack_error().empty() && a.nacked_version() > a.acked_version()) {
    Problem(report,
            "node " + node + " rejected config version " + std::to_string(a.nacked_version()) + ": " + a.nack_error(),
            "fix the resource named in the error; the agent keeps config version " + std::to_string(a.acked_version()) +
                " until then",
            node);
  } else if (a.connected() && latest > 0 && a.acked_version() != latest) {
    Problem(report,
            "node " + node + " runs config version " + std::to_string(a.acked_version()) + ", the controller has " +
                std::to_string(latest),
            "wait a few seconds; if it persists, check the mesh-agent log on " + node, node);
  }
  int attached = 0;
  bool uplink_seen = false;
  for (const auto& at : r.attachments()) {
    j["attachments"].push_back({{"ifname", at.ifname()},
                                {"ifindex", at.ifindex()},
                                {"attached", at.attached()},
                                {"error", at.error()},
                                {"position", at.position()},
                                {"repairs", at.repairs()},
                                {"last_repair_unix", at.last_repair_unix()},
                                {"last_repair", at.last_repair()},
                                {"hook", at.hook()}});
    attached += at.attached();
    uplink_seen = true;
    if (!at.attached() && a.connected()) {
      Problem(report,
              "node " + node + ": no capture program on " + at.ifname() +
                  (at.error().empty() ? "" : " (" + at.error() + ")"),
              "the agent re-attaches a removed program within seconds; if this persists, see the mesh-agent log on " +
                  node + " ('cannot repair tcx position') and restart mesh-agent on " + node + "; traffic on " +
                  at.ifname() + " bypasses the mesh until then",
              node);
    } else if (a.connected() && at.position() > 0) {
      Warning(report,
              "node " + node + ": the capture program on " + at.ifname() + " runs behind " +
                  std::to_string(at.position()) + " other tcx program(s)",
              "the agent moves it back to first within seconds; if this persists, another program is re-attached "
              "first in a loop (bpftool net show dev " +
                  at.ifname() + ")",
              node);
    }
    const int64_t since = in.now_unix - at.last_repair_unix();
    if (at.repairs() > 0 && since < kRepairWarnSeconds && a.connected()) {
      Warning(report,
              "node " + node + ": the agent re-attached its programs on " + at.ifname() + " first " +
                  HumanDuration(since < 0 ? 0 : since) + " ago (" + at.last_repair() +
                  "; repairs since the agent started: " + std::to_string(at.repairs()) + ")",
              "something on " + node +
                  " removes or reorders tcx programs (another CNI, agent or a person with bpftool): "
                  "bpftool net show dev " +
                  at.ifname() + " lists the chain; docs/compatibility.md",
              node);
    }
  }
  j["attachments_ok"] = attached;
  j["attachments_total"] = r.attachments_size();
  if (reported && !uplink_seen && a.connected() && r.errors_size() == 0) {
    Problem(report, "node " + node + " reports no eBPF attachments at all",
            "check the mesh-agent log on " + node + " (bpffs mounted? kernel with tcx? run: meshctl check)", node);
  }
  for (const auto& e : r.errors()) {
    if (a.connected()) Problem(report, "node " + node + ": " + e, "see the mesh-agent log on " + node, node);
  }
  for (const auto& p : r.enrolled_pods()) pods_by_ns[p.substr(0, p.find('/'))]++;
  int64_t node_soonest = 0;
  int old_signer = 0;
  const std::string& signer_now = in.status.controller().ca_signer();
  for (const auto& c : r.certs()) {
    old_signer += !signer_now.empty() && !c.ca_signer().empty() && c.ca_signer() != signer_now;
    int64_t left = c.not_after_unix() - in.now_unix;
    j["certs"].push_back(
        {{"spiffe_id", c.spiffe_id()}, {"not_after_unix", c.not_after_unix()}, {"seconds_left", left}});
    if (node_soonest == 0 || c.not_after_unix() < node_soonest) node_soonest = c.not_after_unix();
    if (soonest.is_null() || c.not_after_unix() < soonest["not_after_unix"].get<int64_t>()) {
      soonest = {
          {"spiffe_id", c.spiffe_id()}, {"node", node}, {"not_after_unix", c.not_after_unix()}, {"seconds_left", left}};
    }
    if (left < in.cert_warn_seconds) {
      Problem(report,
              "certificate " + c.spiffe_id() + " on node " + node +
                  (left <= 0 ? " expired " + HumanDuration(-left) + " ago" : " expires in " + HumanDuration(left)),
              "agents renew at half-life: check CSR denials in the controller log and the mesh-agent log on " + node +
                  "; MeshConfig certTTL sets the lifetime",
              node);
    }
  }
  if (old_signer > 0) {
    Problem(report,
            "node " + node + " holds " + std::to_string(old_signer) + " certificate(s) issued by a previous CA signer",
            "agents re-issue them within seconds of the config push that names the new signer; keep the old root in "
            "the trust bundle until this clears",
            node);
  }
  j["soonest_cert_expiry_unix"] = node_soonest;
  return j;
}

// The controller's own credentials (CA signer, trust roots, serving certificate, join tokens) and the trust-chain
// problems it sees (e.g. a CA key reachable from agent pods).
void CredentialProblems(const StatusInput& in, nlohmann::json& ctrl, nlohmann::json& report) {
  const auto& info = in.status.controller();
  ctrl["ca_signer"] = info.ca_signer();
  ctrl["credentials"] = nlohmann::json::array();
  for (const auto& c : info.credentials()) {
    int64_t left = c.not_after_unix() > 0 ? c.not_after_unix() - in.now_unix : 0;
    ctrl["credentials"].push_back({{"kind", c.kind()},
                                   {"name", c.name()},
                                   {"not_after_unix", c.not_after_unix()},
                                   {"seconds_left", c.not_after_unix() > 0 ? nlohmann::json(left) : nullptr}});
    if (c.not_after_unix() == 0) continue;
    const bool serving = c.kind() == "serving-cert";
    if (left >= (serving ? in.cert_warn_seconds : in.credential_warn_seconds)) continue;
    std::string what = c.kind() == "ca"           ? "the CA signing certificate '" + c.name() + "'"
                       : c.kind() == "trust-root" ? "trust root '" + c.name() + "'"
                       : serving                  ? "the controller's serving certificate"
                       : c.kind() == "join-token" ? "the join token of node " + c.name()
                                                  : c.kind() + " " + c.name();
    std::string hint =
        serving ? "the controller renews it at half-life: look for 'serving certificate renewal failed' in its log"
        : c.kind() == "join-token"
            ? "create a new one (meshctl join-token create " + c.name() +
                  ") and replace the node's entry in the join-token file: it is re-read without a restart"
            : "rotate without downtime: add the new root to the trust bundle, switch the signer, then remove the old "
              "root (docs/design.md, CA rotation)";
    Problem(report,
            what + (left <= 0 ? " expired " + HumanDuration(-left) + " ago" : " expires in " + HumanDuration(left)),
            hint);
  }
  ctrl["security_problems"] = info.security_problems();
  for (const auto& p : info.security_problems()) {
    Problem(report, p,
            "only mesh-controller may read the CA Secret (it holds the private key); agents trust the mesh "
            "through the trust-bundle ConfigMap");
  }
}

}  // namespace

nlohmann::json BuildStatus(const StatusInput& in) {
  nlohmann::json report = {
      {"healthy", false}, {"problems", nlohmann::json::array()}, {"warnings", nlohmann::json::array()}};
  nlohmann::json ctrl = {{"address", in.controller}, {"reachable", in.reachable}};
  if (!in.reachable) {
    ctrl["error"] = in.error;
    report["controller"] = ctrl;
    bool token = in.error.find("token") != std::string::npos;
    Problem(
        report, in.error,
        !in.unreachable_hint.empty() ? in.unreachable_hint
        : token
            ? "use a token from the controller's join-token file (its admin: entry) with --token or ZEROMESH_TOKEN"
            : "check that mesh-controller runs and that --controller / ZEROMESH_CONTROLLER and --ca-cert are right");
    return report;
  }
  const auto& info = in.status.controller();
  const uint64_t latest = info.config_version();
  ctrl["version"] = info.version();
  ctrl["epoch"] = info.epoch();
  ctrl["config_version"] = latest;
  ctrl["trust_domain"] = info.trust_domain();
  ctrl["manifests_dir"] = info.manifests_dir();
  ctrl["manifest_errors"] = nlohmann::json::array();
  for (const auto& e : in.status.manifest_errors()) {
    ctrl["manifest_errors"].push_back({{"file", e.file()}, {"line", e.line()}, {"reason", e.reason()}});
    Problem(report, "manifest " + e.file() + (e.line() ? ":" + std::to_string(e.line()) : "") + ": " + e.reason(),
            latest > 0 ? "fix the manifest; the controller keeps serving config version " + std::to_string(latest)
                       : "fix the manifest; no valid configuration has been loaded yet");
  }
  if (latest == 0 && in.status.manifest_errors_size() == 0) {
    Problem(report, "the controller has no valid configuration",
            "add a MeshConfig manifest to " + info.manifests_dir());
  }
  CredentialProblems(in, ctrl, report);
  report["controller"] = ctrl;

  std::string default_mode = "STRICT";
  for (const auto& r : in.resources.resources()) {
    if (r.has_mesh_config()) default_mode = r.mesh_config().default_mode() == v1::PERMISSIVE ? "PERMISSIVE" : "STRICT";
  }
  report["mesh"] = {{"default_mode", default_mode},
                    {"fail_mode", default_mode == "STRICT" ? "closed" : "open"},
                    {"trust_domain", info.trust_domain()}};

  std::map<std::string, int> pods_by_ns;
  nlohmann::json soonest;  // null until a certificate is seen
  report["agents"] = nlohmann::json::array();
  std::set<std::string> nodes_with_agent;
  for (const auto& a : in.status.agents()) {
    nodes_with_agent.insert(a.node());
    report["agents"].push_back(AgentJson(in, a, latest, report, pods_by_ns, soonest));
  }
  for (const auto& r : in.resources.resources()) {
    if (!r.has_workload() || !r.workload().enrolled()) continue;
    const auto& w = r.workload();
    if (!nodes_with_agent.count(w.node())) {
      Problem(report,
              "workload " + w.namespace_() + "/" + w.name() + " is on node " + w.node() + ", which has no agent",
              "start mesh-agent on " + w.node() +
                  " with a bootstrap naming it (and its join token), or fix "
                  "spec.node in the Workload manifest",
              w.node());
    }
  }
  // Served all the same (the destination proxy sniffs), but rarely what the owner meant: a warning, as Istio's
  // analyzers give.
  for (const auto& c : FindProtocolConflicts(in.resources)) Warning(report, c.message, c.hint, "");
  report["enrolled_pods_by_namespace"] = pods_by_ns;
  report["soonest_cert_expiry"] = soonest;
  report["healthy"] = report["problems"].empty();
  return report;
}

std::string RenderStatus(const nlohmann::json& r) {
  std::string out;
  auto field = [&](const std::string& name, const std::string& value) {
    std::string label = name + ":";
    label.resize(17, ' ');
    out += label + Wrap(value, kMaxWidth, 17) + "\n";
  };
  const auto& c = r["controller"];
  if (!c["reachable"].get<bool>()) {
    bool unreachable = c["error"].get<std::string>().find("unreachable") != std::string::npos;
    field("Controller", c["address"].get<std::string>() + (unreachable ? " UNREACHABLE" : " (request failed)"));
  } else {
    std::string epoch = c["epoch"].get<std::string>();
    field("Controller", c["address"].get<std::string>() + " (reachable), version " + c["version"].get<std::string>() +
                            ", epoch " + epoch.substr(0, 8));
    field("Config version", std::to_string(c["config_version"].get<uint64_t>()) +
                                " (manifest errors: " + std::to_string(c["manifest_errors"].size()) + ")");
    const auto& m = r["mesh"];
    field("Trust domain", m["trust_domain"].get<std::string>());
    field("Fail mode", m["fail_mode"].get<std::string>() + " (default mode " + m["default_mode"].get<std::string>() +
                           "): what enrolled pods get while no proxy listens");
    std::string expiry = "-";
    if (!r["soonest_cert_expiry"].is_null()) {
      const auto& e = r["soonest_cert_expiry"];
      expiry = "in " + HumanDuration(e["seconds_left"].get<int64_t>()) + ": " + e["spiffe_id"].get<std::string>() +
               " on " + e["node"].get<std::string>();
    }
    field("Soonest expiry", expiry);
    for (const auto& cred : c["credentials"]) {
      if (cred["kind"] != "ca") continue;
      std::string left = cred["seconds_left"].is_null()
                             ? "never expires"
                             : "expires in " + HumanDuration(cred["seconds_left"].get<int64_t>());
      field("CA", cred["name"].get<std::string>() + ", " + left);
    }
    out += "\n";
    Table agents(
        {"NODE", "AGENT", "CONNECTED", "CONFIG", "NACK", "EBPF", "PODS", "CERT EXPIRY", "FAIL MODE", "REPORTED"});
    for (const auto& a : r["agents"]) {
      int64_t age = a["last_report_age_seconds"].get<int64_t>();
      int64_t soon = a["soonest_cert_expiry_unix"].get<int64_t>();
      int64_t left = 0;
      for (const auto& cert : a["certs"]) {
        if (cert["not_after_unix"].get<int64_t>() == soon) left = cert["seconds_left"].get<int64_t>();
      }
      agents.Add(
          {a["node"].get<std::string>(),
           a["version"].get<std::string>().empty() ? "-" : a["version"].get<std::string>(),
           a["connected"].get<bool>() ? "yes" : "NO",
           std::to_string(a["config_version_applied"].get<uint64_t>()) + "/" +
               std::to_string(a["config_version_latest"].get<uint64_t>()),
           a["nack_error"].get<std::string>().empty() ? "-" : "v" + std::to_string(a["nacked_version"].get<uint64_t>()),
           std::to_string(a["attachments_ok"].get<int>()) + "/" + std::to_string(a["attachments_total"].get<int>()),
           std::to_string(a["enrolled_pods"].size()), soon ? HumanDuration(left) : "-",
           a["fail_mode"].get<std::string>().empty() ? "-" : a["fail_mode"].get<std::string>(),
           age < 0 ? "never" : HumanDuration(age) + " ago"});
    }
    out += agents.empty() ? "no agents have connected\n" : agents.Render();
    if (!r["enrolled_pods_by_namespace"].empty()) {
      Table ns({"NAMESPACE", "ENROLLED PODS"});
      for (const auto& [k, v] : r["enrolled_pods_by_namespace"].items()) ns.Add({k, std::to_string(v.get<int>())});
      out += "\n" + ns.Render();
    }
  }
  const auto& problems = r["problems"];
  if (problems.empty()) {
    out += "\nno problems found\n";
  } else {
    out += "\nPROBLEMS (" + std::to_string(problems.size()) + ")\n";
    for (const auto& p : problems) {
      out += "- " + Wrap(p["message"].get<std::string>(), kMaxWidth, 2) + "\n";
      out += "  fix: " + Wrap(p["hint"].get<std::string>(), kMaxWidth, 7) + "\n";
    }
  }
  if (r.contains("warnings") && !r["warnings"].empty()) {
    out += "\nWARNINGS (" + std::to_string(r["warnings"].size()) + ")\n";
    for (const auto& w : r["warnings"]) {
      out += "- " + Wrap(w["message"].get<std::string>(), kMaxWidth, 2) + "\n";
      out += "  see: " + Wrap(w["hint"].get<std::string>(), kMaxWidth, 7) + "\n";
    }
  }
  return out;
}

}  // namespace zm::meshctl
