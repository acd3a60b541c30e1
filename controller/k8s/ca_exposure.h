// Who can read the CA's private key? Kubernetes' Node authorizer lets a node's kubelet read every Secret that a pod on
// that node mounts, so any pod mounting the CA Secret hands the key to its node (and to root there). The controller
// reads the Secret through the API and no pod should mount it; this finds the pods that do, for meshctl status.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace zm::k8s {

// One problem line per pod in `ns` that mounts Secret `secret` (a secret volume or a projected secret source).
std::vector<std::string> PodsMountingSecret(const std::map<std::string, nlohmann::json>& pods, const std::string& ns,
                                            const std::string& secret);

}  // namespace zm::k8s
