#include "tools/meshctl/kube/locate.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "controller/k8s/trust_bundle_configmap.h"

namespace zm::meshctl::kube {
namespace {

using nlohmann::json;

constexpr const char* kControllerSelector =
    "app.kubernetes.io%2Fpart-of%3Dzeromesh%2Capp.kubernetes.io%2Fcomponent%3Dcontroller";
constexpr const char* kTrustBundleSelector = "app.kubernetes.io%2Fcomponent%3Dtrust-bundle";

// A failed API request, said for a person: unreachable, credentials rejected, or the permission it needs.
std::string Explain(const k8s::Http& api, const k8s::HttpResponse& r, const std::string& what,
                    const std::string& permission, const std::string& ns) {
  if (!r.error.empty()) return "the API server " + api.config().server + " is unreachable: " + r.error;
  if (r.status == 401) {
    return "the API server " + api.config().server + " rejected the kubeconfig's credentials (" + r.Describe() +
           "): log in again or pick another --context";
  }
  std::string out = "cannot " + what + ": " + r.Describe();
  if (r.status == 403) out += " (meshctl needs `" + permission + "` in namespace " + ns + ")";
  return out;
}

std::vector<std::string> ControllerArgs(const json& pod) {
  std::vector<std::string> args;
  const json& containers = pod["spec"].value("containers", json::array());
  for (const auto& c : containers) {
    if (!c.contains("args") || !c["args"].is_array()) continue;
    bool is_controller = c.value("name", "") == "controller";
    std::vector<std::string> a;
    for (const auto& v : c["args"]) {
      if (v.is_string()) a.push_back(v.get<std::string>());
    }
    if (is_controller || args.empty()) args = std::move(a);
    if (is_controller) break;
  }
  return args;
}

bool Running(const json& pod) {
  if (pod["metadata"].contains("deletionTimestamp")) return false;
  return pod.value("status", json::object()).value("phase", "") == "Running";
}

bool Ready(const json& pod) {
  const json& conds = pod.value("status", json::object()).value("conditions", json::array());
  if (!conds.is_array()) return false;
  for (const auto& c : conds) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

// [NS/]NAME with `ns` as the default namespace.
void SplitRef(const std::string& ref, const std::string& ns, std::string* out_ns, std::string* out_name) {
  auto slash = ref.find('/');
  *out_ns = slash == std::string::npos ? ns : ref.substr(0, slash);
  *out_name = slash == std::string::npos ? ref : ref.substr(slash + 1);
}

bool ReadRoots(const k8s::Http& api, const std::string& ns, const std::vector<std::string>& args, ControllerTarget* t,
               std::string* error) {
  std::string cm_ns, cm_name;
  if (std::string ref = ArgValue(args, "--trust-bundle-configmap"); !ref.empty()) {
    SplitRef(ref, ns, &cm_ns, &cm_name);
  } else {
    // Not in the args (an older or hand-made install): the ConfigMap the controller labels as the trust bundle.
    auto list = api.Request("GET", "/api/v1/namespaces/" + ns + "/configmaps?labelSelector=" + kTrustBundleSelector, "",
                            "", 10);
    if (!list.ok()) {
      *error = Explain(api, list, "find the trust-bundle ConfigMap", "list configmaps", ns) +
               "; or give the mesh root with --ca-cert FILE";
      return false;
    }
    auto j = json::parse(list.body, nullptr, false);
    const json& items = j.is_object() ? j.value("items", json::array()) : json::array();
    if (!items.is_array() || items.empty()) {
      *error = "no trust-bundle ConfigMap in namespace " + ns +
               " (the controller publishes it once it runs); or give the mesh root with --ca-cert FILE";
      return false;
    }
    cm_ns = ns;
    cm_name = items[0]["metadata"].value("name", "");
  }
  t->root_source = "ConfigMap " + cm_ns + "/" + cm_name;
  auto got = api.Request("GET", "/api/v1/namespaces/" + cm_ns + "/configmaps/" + cm_name, "", "", 10);
  if (!got.ok()) {
    *error = Explain(api, got, "read the mesh root from " + t->root_source, "get configmaps", cm_ns) +
             (got.status == 404 ? " (the controller publishes it once it runs)" : "") +
             "; or give the mesh root with --ca-cert FILE";
    return false;
  }
  auto j = json::parse(got.body, nullptr, false);
  const json data = j.is_object() ? j.value("data", json::object()) : json::object();
  t->root_pem = data.is_object() ? data.value(k8s::kTrustBundleKey, "") : "";
  if (t->root_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    *error = t->root_source + " has no certificate under " + k8s::kTrustBundleKey;
    return false;
  }
  return true;
}

}  // namespace

std::string ArgValue(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i < args.size(); i++) {
    if (args[i].rfind(flag + "=", 0) == 0) return args[i].substr(flag.size() + 1);
    if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
  }
  return "";
}

std::string HolderPod(const std::string& holder_identity) {
  auto underscore = holder_identity.rfind('_');
  return underscore == std::string::npos ? holder_identity : holder_identity.substr(0, underscore);
}

std::optional<ControllerTarget> LocateController(const k8s::Http& api, const std::string& ns, bool want_root,
                                                 std::string* error) {
  auto list = api.Request("GET", "/api/v1/namespaces/" + ns + "/pods?labelSelector=" + kControllerSelector, "", "", 10);
  if (!list.ok()) {
    *error = Explain(api, list, "list the controller pods in namespace " + ns, "list pods", ns);
    return std::nullopt;
  }
  auto j = json::parse(list.body, nullptr, false);
  const json items = j.is_object() ? j.value("items", json::array()) : json::array();
  std::vector<json> running;
  std::string not_running;
  for (const auto& p : items) {
    if (Running(p)) {
      running.push_back(p);
    } else {
      not_running += (not_running.empty() ? "" : ", ") + p["metadata"].value("name", "") + " (" +
                     p.value("status", json::object()).value("phase", "?") + ")";
    }
  }
  if (running.empty()) {
    *error = items.empty() ? "no zeromesh controller pod in namespace " + ns +
                                 " (labels app.kubernetes.io/part-of=zeromesh, app.kubernetes.io/component=controller):"
                                 " is the chart installed there? (-n NAMESPACE)"
                           : "no zeromesh controller pod is running in namespace " + ns + ": " + not_running;
    return std::nullopt;
  }
  ControllerTarget t;
  t.ns = ns;
  const json* chosen = nullptr;
  std::vector<std::string> args = ControllerArgs(running[0]);
  // The leader: the Lease the controller elects through (its args; the chart names it after the Deployment).
  std::string why_not;
  if (ArgValue(args, "--leader-elect") == "false") {  // the controller takes --leader-elect=false only
    why_not = "leader election is off";
  } else {
    std::string lease_ns = ArgValue(args, "--leader-elect-namespace");
    std::string lease = ArgValue(args, "--leader-elect-lease-name");
    if (lease_ns.empty()) lease_ns = ns;
    if (lease.empty()) lease = "zeromesh-controller";
    auto got =
        api.Request("GET", "/apis/coordination.k8s.io/v1/namespaces/" + lease_ns + "/leases/" + lease, "", "", 10);
    if (got.ok()) {
      auto l = json::parse(got.body, nullptr, false);
      std::string holder = l.is_object() ? l.value("spec", json::object()).value("holderIdentity", "") : "";
      for (const auto& p : running) {
        if (!holder.empty() && p["metadata"].value("name", "") == HolderPod(holder)) chosen = &p;
      }
      if (chosen) t.role = "leader (lease " + lease_ns + "/" + lease + ")";
      why_not = holder.empty() ? "the lease " + lease_ns + "/" + lease + " has no holder"
                               : "the lease holder " + holder + " is not a running controller pod";
    } else if (got.status == 403) {
      why_not = "cannot read the lease " + lease_ns + "/" + lease + " (`get leases.coordination.k8s.io`)";
    } else {
      why_not = "the lease " + lease_ns + "/" + lease + ": " + got.Describe();
    }
  }
  if (!chosen) {
    for (const auto& p : running) {
      if (!chosen || (Ready(p) && !Ready(*chosen))) chosen = &p;
    }
    t.role = "picked without a leader: " + why_not;
  }
  t.pod = (*chosen)["metadata"].value("name", "");
  args = ControllerArgs(*chosen);
  std::string addr = ArgValue(args, "--operator-addr");
  auto colon = addr.rfind(':');
  long port = colon == std::string::npos ? 0 : std::strtol(addr.c_str() + colon + 1, nullptr, 10);
  if (addr.empty() || addr == "off" || port <= 0 || port > 65535) {
    *error = "the controller pod " + ns + "/" + t.pod +
             " has no operator port (--operator-addr in its args): install a chart version that sets it, or use "
             "--controller HOST:PORT --token --ca-cert";
    return std::nullopt;
  }
  t.operator_port = static_cast<uint16_t>(port);
  if (want_root && !ReadRoots(api, ns, args, &t, error)) return std::nullopt;
  return t;
}

}  // namespace zm::meshctl::kube
