#include "controller/k8s/ca_exposure.h"

#include "controller/k8s/reflector.h"

namespace zm::k8s {

using nlohmann::json;

namespace {

// The name of the volume's source Secret equal to `secret`, if any.
bool MountsSecret(const json& volume, const std::string& secret) {
  if (!volume.is_object()) return false;
  if (StrAt(volume, "secret", "secretName") == secret) return true;
  auto projected = volume.find("projected");
  if (projected == volume.end() || !projected->is_object()) return false;
  auto sources = projected->find("sources");
  if (sources == projected->end() || !sources->is_array()) return false;
  for (const auto& src : *sources) {
    if (src.is_object() && StrAt(src, "secret", "name") == secret) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> PodsMountingSecret(const std::map<std::string, json>& pods, const std::string& ns,
                                            const std::string& secret) {
  std::vector<std::string> out;
  const std::string prefix = ns + "/";
  for (auto it = pods.lower_bound(prefix); it != pods.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const json& pod = it->second;
    auto spec = pod.find("spec");
    if (spec == pod.end() || !spec->is_object()) continue;
    auto volumes = spec->find("volumes");
    if (volumes == spec->end() || !volumes->is_array()) continue;
    for (const auto& v : *volumes) {
      if (!MountsSecret(v, secret)) continue;
      std::string node = StrAt(pod, "spec", "nodeName");
      out.push_back("pod " + it->first + " mounts the CA Secret " + ns + "/" + secret + " (volume '" +
                    (v.is_object() ? v.value("name", "") : "") + "'): the kubelet of node '" +
                    (node.empty() ? "?" : node) +
                    "' can read the CA private key and sign any identity; mount the trust-bundle ConfigMap instead");
      break;
    }
  }
  return out;
}

}  // namespace zm::k8s
