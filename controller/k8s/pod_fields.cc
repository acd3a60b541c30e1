#include "controller/k8s/pod_fields.h"

#include <initializer_list>

namespace zm::k8s {
namespace {

using nlohmann::json;

// `from`'s members named in `keep` (those present), as a new object.
json Pick(const json& from, std::initializer_list<const char*> keep) {
  json out = json::object();
  if (!from.is_object()) return out;
  for (const char* k : keep) {
    if (auto it = from.find(k); it != from.end()) out[k] = *it;
  }
  return out;
}

json Containers(const json& list) {
  json out = json::array();
  if (!list.is_array()) return out;
  for (const auto& c : list) {
    out.push_back(Pick(c, {"name", "ports", "livenessProbe", "readinessProbe", "startupProbe", "restartPolicy"}));
  }
  return out;
}

// Only volumes that reference a Secret, with only that reference (a secret volume, or a projected one's sources).
json SecretVolumes(const json& list) {
  json out = json::array();
  if (!list.is_array()) return out;
  for (const auto& v : list) {
    if (!v.is_object()) continue;
    json kept = Pick(v, {"name", "secret"});
    if (auto p = v.find("projected"); p != v.end() && p->is_object()) {
      json sources = json::array();
      if (auto s = p->find("sources"); s != p->end() && s->is_array()) {
        for (const auto& src : *s) {
          if (src.is_object() && src.contains("secret")) sources.push_back(Pick(src, {"secret"}));
        }
      }
      if (!sources.empty()) kept["projected"] = {{"sources", std::move(sources)}};
    }
    if (kept.contains("secret") || kept.contains("projected")) out.push_back(std::move(kept));
  }
  return out;
}

}  // namespace

void TrimPod(json* pod) {
  if (!pod->is_object()) return;
  json out = json::object();
  if (auto m = pod->find("metadata"); m != pod->end()) {
    out["metadata"] = Pick(*m, {"name", "namespace", "uid", "labels", "resourceVersion", "creationTimestamp"});
  }
  if (auto s = pod->find("spec"); s != pod->end() && s->is_object()) {
    json spec = Pick(*s, {"nodeName", "serviceAccountName", "hostNetwork"});
    if (s->contains("containers")) spec["containers"] = Containers((*s)["containers"]);
    if (s->contains("initContainers")) spec["initContainers"] = Containers((*s)["initContainers"]);
    if (json vols = SecretVolumes(s->value("volumes", json::array())); !vols.empty()) spec["volumes"] = std::move(vols);
    out["spec"] = std::move(spec);
  }
  if (auto st = pod->find("status"); st != pod->end())
    out["status"] = Pick(*st, {"phase", "podIP", "podIPs", "hostIP"});
  for (const char* k : {"apiVersion", "kind"}) {
    if (auto it = pod->find(k); it != pod->end()) out[k] = *it;
  }
  *pod = std::move(out);
}

}  // namespace zm::k8s
