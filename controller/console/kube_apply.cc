#include "controller/console/kube_apply.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include "controller/k8s/http.h"

namespace zm::ctrl::console {

using nlohmann::json;

k8s::ClientConfig KubeApplier::AsUser(const std::string& token) const {
  k8s::ClientConfig c;
  c.server = base_.server;
  c.ca_pem = base_.ca_pem;
  c.insecure = base_.insecure;
  c.token = token;  // and nothing of the controller's own identity
  return c;
}

std::string KubeApplier::PathOf(const std::string& api_version, const std::string& kind, const std::string& ns,
                                const std::string& name) {
  if (kind == "Namespace" && api_version == "v1") return "/api/v1/namespaces/" + name;
  if (ns.empty()) return "";
  if (kind == "TrafficPermission" && api_version == "zeromesh.io/v1alpha1") {
    return "/apis/zeromesh.io/v1alpha1/namespaces/" + ns + "/trafficpermissions/" + name;
  }
  if (kind == "TCPRoute" && api_version == "gateway.networking.k8s.io/v1alpha2") {
    return "/apis/gateway.networking.k8s.io/v1alpha2/namespaces/" + ns + "/tcproutes/" + name;
  }
  return "";
}

KubeApplyResult KubeApplier::Apply(const std::string& user_token, const std::string& manifest) const {
  KubeApplyResult r;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(manifest);
  } catch (const YAML::Exception& e) {
    r.errors.push_back(std::string("the manifest is not YAML: ") + e.what());
    return r;
  }
  k8s::Http http(AsUser(user_token));
  for (const auto& doc : docs) {
    if (!doc.IsMap()) continue;
    const std::string api = doc["apiVersion"] ? doc["apiVersion"].as<std::string>() : "";
    const std::string kind = doc["kind"] ? doc["kind"].as<std::string>() : "";
    const auto meta = doc["metadata"];
    const std::string name = meta && meta["name"] ? meta["name"].as<std::string>() : "";
    const std::string ns = meta && meta["namespace"] ? meta["namespace"].as<std::string>() : "";
    const std::string path = PathOf(api, kind, ns, name);
    if (path.empty() || name.empty()) {
      r.errors.push_back("the console does not apply " + kind + " " + api);
      return r;
    }
    YAML::Emitter out;
    out << doc;
    auto resp = http.Request("PATCH", path + "?fieldManager=zeromesh-console&force=true", out.c_str(),
                             "application/apply-patch+yaml", 15);
    if (!resp.ok()) {
      r.status = static_cast<int>(resp.status);
      json status = json::parse(resp.body, nullptr, false);
      std::string message = status.is_object() ? status.value("message", "") : "";
      r.errors.push_back(kind + " " + (ns.empty() ? "" : ns + "/") + name + ": " +
                         (message.empty() ? resp.Describe() : message));
      return r;  // documents before this one stay applied; the answer lists them
    }
    r.applied.push_back(kind + " " + (ns.empty() ? "" : ns + "/") + name);
  }
  r.ok = true;
  return r;
}

std::map<std::string, std::string> KubeApplier::NamespaceLabels(const std::string& user_token,
                                                                const std::string& ns) const {
  std::map<std::string, std::string> labels;
  k8s::Http http(AsUser(user_token));
  auto resp = http.Request("GET", "/api/v1/namespaces/" + ns, "", "", 10);
  if (!resp.ok()) return labels;
  json j = json::parse(resp.body, nullptr, false);
  if (!j.is_object() || !j.contains("metadata") || !j["metadata"].contains("labels")) return labels;
  for (const auto& [k, v] : j["metadata"]["labels"].items()) {
    if (v.is_string()) labels[k] = v.get<std::string>();
  }
  return labels;
}

}  // namespace zm::ctrl::console
