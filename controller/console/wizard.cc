#include "controller/console/wizard.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>

#include "common/tls/spiffe.h"
#include "controller/console/body_fields.h"
#include "controller/manifest/every_address.h"

namespace zm::ctrl::console {

namespace v1 = zeromesh::v1;
using nlohmann::json;

namespace {

constexpr char kMeshLabel[] = "zeromesh.io/mesh";
constexpr char kModeLabel[] = "zeromesh.io/mode";

StepResult Bad(const std::string& why) {
  return {400, {{"error", why}}};
}

std::string Kubectl(const std::string& manifest) {
  return "kubectl apply -f - <<'EOF'\n" + manifest + "EOF\n";
}

bool InNamespace(const std::string& key, const std::string& ns) {
  return key.compare(0, ns.size() + 1, ns + "/") == 0;
}

// A TrafficPermission over every workload of |ns| for the given source identities, after a "# " comment line.
std::string PermissionDoc(const std::string& comment, const std::string& name, const std::string& ns,
                          const char* action, const std::vector<std::string>& identities) {
  std::string out = "# " + comment +
                    "\napiVersion: zeromesh.io/v1alpha1\nkind: TrafficPermission\nmetadata:\n  name: " + name +
                    "\n  namespace: " + ns + "\nspec:\n  action: " + action + "\n  sources:\n    identities:\n";
  for (const auto& id : identities) out += "    - \"" + id + "\"\n";
  return out + "  destination:\n    selector:\n      matchLabels: {}\n";
}

}  // namespace

bool ValidNamespaceParam(const json& req, std::string* ns, std::string* error) {
  if (!req.is_object() || !req.contains("namespace") || !req["namespace"].is_string()) {
    *error = "the body needs \"namespace\": a string";
    return false;
  }
  *ns = req["namespace"].get<std::string>();
  if (!tls::ValidNamespace(*ns, error)) {
    *error = "\"namespace\": " + *error;
    return false;
  }
  return true;
}

std::string Wizard::NamespaceManifest(const std::string& ns, const std::map<std::string, std::string>& set,
                                      const std::map<std::string, std::string>& defaults,
                                      std::map<std::string, std::string>* had) const {
  std::map<std::string, std::string> current;
  if (!sink_.dir.empty()) {
    try {  // what the wizard (or the demo) wrote before: keep its other labels
      YAML::Node doc = YAML::Load(ReadManifest(sink_, NamespaceFile(ns)));
      if (doc["metadata"] && doc["metadata"]["labels"] && doc["metadata"]["labels"].IsMap()) {
        for (const auto& kv : doc["metadata"]["labels"]) {
          current[kv.first.as<std::string>()] = kv.second.as<std::string>();
        }
      }
    } catch (const YAML::Exception&) {
      // not ours to repair: the controller reports that file's errors
    }
  } else if (sink_.namespace_labels) {
    current = sink_.namespace_labels(ns);
  }
  if (had != nullptr) *had = current;
  // Universal mode: the file is the whole object, so it keeps every label. Kubernetes: a server-side apply holds
  // only the fields the console owns; other labels stay with whoever set them.
  std::map<std::string, std::string> labels = sink_.dir.empty() ? std::map<std::string, std::string>{} : current;
  for (const auto& [k, v] : defaults) {
    if (!current.count(k)) labels[k] = v;
  }
  for (const auto& [k, v] : set) labels[k] = v;
  std::string out = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + ns + "\n  labels:\n";
  for (const auto& [k, v] : labels) out += "    " + k + ": \"" + v + "\"\n";
  return out;
}

StepResult Wizard::Finish(const json& req, json body, const std::string& file, const std::string& manifest,
                          const std::string& kubectl) const {
  body["manifest"] = manifest;
  body["kubectl"] = kubectl;
  body["applied"] = false;
  body["written"] = json::array();
  body["file"] = file;
  bool apply = false;
  std::string error;
  if (!OptionalBool(req, "apply", &apply, &error)) return Bad(error);
  if (!apply) return {200, body};
  if (sink_.dir.empty()) {
    if (!sink_.kube_apply) {
      body["error"] = "this controller cannot apply for you: run the kubectl command";
      return {409, body};
    }
    KubeApplyResult k = sink_.kube_apply(manifest);  // as the signed-in user: their RBAC decides
    body["written"] = k.applied;
    if (!k.ok) {
      body["error"] = "the Kubernetes API server refused it: " +
                      (k.errors.empty() ? std::string("unknown error") : k.errors.front());
      body["errors"] = k.errors;
      return {k.status == 403 ? 403 : 409, body};
    }
    body["applied"] = true;
    return {200, body};
  }
  WriteResult w = WriteManifest(sink_, file, manifest);
  if (!w.ok) {
    body["error"] = "the controller refused " + file +
                    " (nothing changed): " + (w.errors.empty() ? std::string("unknown error") : w.errors.front());
    body["errors"] = w.errors;
    return {409, body};
  }
  body["applied"] = true;
  body["written"].push_back(w.path);
  return {200, body};
}

StepResult Wizard::Enroll(const json& req) const {
  std::string ns, error;
  if (!ValidNamespaceParam(req, &ns, &error)) return Bad(error);
  json workloads = json::array();
  int total = 0, enrolled = 0;
  for (const auto& r : in_.resources.resources()) {
    if (!r.has_workload() || r.workload().namespace_() != ns) continue;
    const auto& w = r.workload();
    total++;
    enrolled += w.enrolled();
    workloads.push_back({{"name", w.name()},
                         {"node", w.node()},
                         {"ip", w.ip()},
                         {"ips", manifest::EveryIp(w)},
                         {"enrolled_now", w.enrolled()}});
  }
  // Enrolling starts PERMISSIVE (unless the namespace already chose a mode): clients outside the mesh keep working
  // while the agents watch who they are, and step 2 turns STRICT on once its preflight shows nobody would break.
  std::map<std::string, std::string> had;
  const std::string manifest = NamespaceManifest(ns, {{kMeshLabel, "enabled"}}, {{kModeLabel, "PERMISSIVE"}}, &had);
  const bool mode_chosen = had.count(kModeLabel) > 0;
  json changes = json::array();
  changes.push_back("label namespace " + ns + " " + kMeshLabel + "=enabled" +
                    (mode_chosen ? "" : std::string(" and ") + kModeLabel + "=PERMISSIVE"));
  if (!mode_chosen) {
    changes.push_back(
        "PERMISSIVE first: plaintext clients outside the mesh keep working while the agents record "
        "them; step 2 shows who they are before STRICT refuses them");
  }
  changes.push_back(std::to_string(total - enrolled) + " of " + std::to_string(total) +
                    " workload(s) join the mesh: their node's agent captures their traffic with eBPF on the pod's "
                    "interface. No pod restarts, no sidecar, no init container.");
  changes.push_back(
      "new connections to and from them go through the node proxies over mTLS with their "
      "ServiceAccount's SPIFFE identity; connections already open finish as they are");
  changes.push_back("a workload whose own manifest (or pod label) says zeromesh.io/mesh keeps its own setting");
  json body = {{"namespace", ns},
               {"already_enrolled", total > 0 && enrolled == total},
               {"workloads", workloads},
               {"changes", changes},
               {"restarts", 0}};
  return Finish(req, body, NamespaceFile(ns), manifest,
                "kubectl label namespace " + ns + " " + kMeshLabel + "=enabled" +
                    (mode_chosen ? "" : std::string(" ") + kModeLabel + "=PERMISSIVE") + " --overwrite\n");
}

StepResult Wizard::Mode(const json& req) const {
  std::string ns, error;
  if (!ValidNamespaceParam(req, &ns, &error)) return Bad(error);
  std::string mode;
  if (!OptionalString(req, "mode", &mode, &error)) return Bad(error);
  if (mode != "STRICT" && mode != "PERMISSIVE") return Bad("\"mode\" must be STRICT or PERMISSIVE");
  // Preflight: clients seen talking to this namespace's workloads without an identity lose access under STRICT.
  json breaking = json::array();
  for (const auto& p : in_.traffic) {
    if (p.mtls || !InNamespace(p.destination, ns) || p.connections_total == 0) continue;
    breaking.push_back({{"source", p.source}, {"destination", p.destination}, {"connections", p.connections_total}});
  }
  json body = {{"namespace", ns}, {"mode", mode}, {"breaking_clients", mode == "STRICT" ? breaking : json::array()}};
  return Finish(req, body, NamespaceFile(ns), NamespaceManifest(ns, {{kModeLabel, mode}}),
                "kubectl label namespace " + ns + " " + kModeLabel + "=" + mode + " --overwrite\n");
}

StepResult Wizard::Policy(const json& req) const {
  std::string ns, error;
  if (!ValidNamespaceParam(req, &ns, &error)) return Bad(error);
  struct Seen {
    std::string workload;
    uint64_t connections = 0;
    std::set<std::string> destinations;
  };
  std::map<std::string, Seen> observed;  // by identity
  for (const auto& p : in_.traffic) {
    if (!p.mtls || p.source_principal.empty() || !InNamespace(p.destination, ns)) continue;
    Seen& s = observed[p.source_principal];
    s.workload = p.source;
    s.connections += p.connections_total;
    s.destinations.insert(p.destination);
  }
  json sources = json::array();
  for (const auto& [id, s] : observed) {
    sources.push_back({{"identity", id},
                       {"workload", s.workload},
                       {"connections", s.connections},
                       {"destinations", json(s.destinations)}});
  }
  auto identities = [&](const char* key, std::vector<std::string>* out) -> bool {
    if (!req.contains(key)) return true;
    if (!req[key].is_array()) return false;
    for (const auto& v : req[key]) {
      tls::SpiffeId id;
      std::string why;
      if (!v.is_string() || !tls::ParseSpiffeId(v.get<std::string>(), &id, &why)) {
        error = std::string("\"") + key + "\": " + (v.is_string() ? v.get<std::string>() + ": " + why : "not a string");
        return false;
      }
      out->push_back(v.get<std::string>());
    }
    return true;
  };
  std::vector<std::string> allow, deny;
  if (!identities("allow", &allow) || !identities("deny", &deny)) {
    return Bad(error.empty() ? "\"allow\" and \"deny\" must be lists of SPIFFE IDs" : error);
  }
  if (!req.contains("allow") && !req.contains("deny")) {
    for (const auto& [id, s] : observed) allow.push_back(id);  // the suggestion: what already talks keeps talking
  }
  if (allow.empty() && deny.empty()) {
    return Bad("nothing to allow or deny: no identified client has been seen talking to " + ns +
               " yet (send some traffic, or name identities in \"allow\"/\"deny\")");
  }
  std::string manifest;
  if (!deny.empty()) {
    manifest +=
        PermissionDoc("Written by the zeromesh console: these clients may not reach any workload in " + ns + ".",
                      "console-deny", ns, "DENY", deny);
  }
  if (!allow.empty()) {
    manifest += std::string(manifest.empty() ? "" : "---\n") +
                PermissionDoc("Written by the zeromesh console: default deny for " + ns +
                                  " (an ALLOW policy turns the workloads it selects into allow-lists), allowing the "
                                  "clients seen.",
                              "console-allow-observed", ns, "ALLOW", allow);
  }
  json body = {{"namespace", ns}, {"observed_sources", sources}, {"allow", allow}, {"deny", deny}};
  return Finish(req, body, "trafficpermission-" + ns + "-console.yaml", manifest, Kubectl(manifest));
}

StepResult Wizard::Canary(const json& req) const {
  std::string ns, error;
  if (!ValidNamespaceParam(req, &ns, &error)) return Bad(error);
  std::map<std::string, const v1::Service*> services;
  json candidates = json::array();
  for (const auto& r : in_.resources.resources()) {
    if (!r.has_service() || r.service().namespace_() != ns) continue;
    services[r.service().name()] = &r.service();
    json ports = json::array();
    for (const auto& p : r.service().ports()) ports.push_back(p.port());
    candidates.push_back({{"name", r.service().name()},
                          {"vip", r.service().vip()},
                          {"vips", manifest::EveryVip(r.service())},
                          {"ports", ports}});
  }
  json body = {{"namespace", ns}, {"candidates", candidates}};
  std::string service;
  if (!OptionalString(req, "service", &service, &error)) return Bad(error);
  if (service.empty()) return {200, body};  // first call: only the candidates
  auto parent = services.find(service);
  if (parent == services.end()) return Bad("no Service " + ns + "/" + service);
  uint32_t port = 0;
  if (!OptionalPort(req, "port", &port, &error)) return Bad(error);
  if (port == 0 && !parent->second->ports().empty()) port = parent->second->ports(0).port();
  if (!req.contains("backends") || !req["backends"].is_array() || req["backends"].empty()) {
    return Bad("\"backends\": a list of {name, weight} (Services of " + ns + ")");
  }
  std::string backends;
  uint64_t total = 0;
  for (const auto& b : req["backends"]) {
    if (!b.is_object() || !b.contains("name") || !b["name"].is_string() || !b.contains("weight") ||
        !b["weight"].is_number_integer() || b["weight"].get<int64_t>() < 0 || b["weight"].get<int64_t>() > 1000000) {
      return Bad("each backend needs \"name\" (a Service) and \"weight\" (0..1000000)");
    }
    const std::string name = b["name"].get<std::string>();
    if (!services.count(name)) return Bad("no Service " + ns + "/" + name + " to send traffic to");
    total += b["weight"].get<uint64_t>();
    backends += "    - name: " + name + "\n      port: " + std::to_string(port) +
                "\n      weight: " + std::to_string(b["weight"].get<uint64_t>()) + "\n";
  }
  if (total == 0) return Bad("the weights add up to 0: every connection would be refused");
  // One route per parent: reuse the name of a route already attached to this Service, so the wizard edits it.
  std::string route_name = service + "-canary";
  for (const auto& r : in_.resources.resources()) {
    if (!r.has_tcp_route() || r.tcp_route().namespace_() != ns) continue;
    for (const auto& p : r.tcp_route().parent_refs()) {
      if (p.name() == service && (p.namespace_().empty() || p.namespace_() == ns)) route_name = r.tcp_route().name();
    }
  }
  const std::string manifest =
      "# Written by the zeromesh console: a canary split of new connections to " + service +
      ".\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata:\n  name: " + route_name +
      "\n  namespace: " + ns + "\nspec:\n  parentRefs:\n  - kind: Service\n    name: " + service +
      "\n    port: " + std::to_string(port) + "\n  rules:\n  - backendRefs:\n" + backends;
  body["service"] = service;
  return Finish(req, body, "tcproute-" + ns + "-" + route_name + ".yaml", manifest, Kubectl(manifest));
}

}  // namespace zm::ctrl::console
