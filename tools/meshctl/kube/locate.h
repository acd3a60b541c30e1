// Finds mesh-controller through the Kubernetes API with the user's own credentials: the chart's controller pods
// (labels app.kubernetes.io/part-of=zeromesh, app.kubernetes.io/component=controller), the leader among them (the
// Lease its args name, --leader-elect-lease-name, whose holderIdentity is "<pod>_<random>"), its operator port
// (--operator-addr) and the mesh roots (the ConfigMap of --trust-bundle-configmap, key root-cert.pem). Every refusal
// names the permission it needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "controller/k8s/http.h"

namespace zm::meshctl::kube {

struct ControllerTarget {
  std::string ns, pod;
  std::string role;  // "leader (lease NS/NAME)", or why this replica was picked without one
  uint16_t operator_port = 0;
  std::string root_pem;     // "" when not asked for
  std::string root_source;  // "ConfigMap NS/NAME"
};

// `want_root`: also read the trust-bundle ConfigMap (not needed when the user gives --ca-cert).
std::optional<ControllerTarget> LocateController(const k8s::Http& api, const std::string& ns, bool want_root,
                                                 std::string* error);

// Helpers, exposed for tests: the value of `--flag=v` / `--flag v` in a container's args ("" if absent), and the pod
// name in a Lease holderIdentity ("<pod>_<suffix>"; pod names have no '_').
std::string ArgValue(const std::vector<std::string>& args, const std::string& flag);
std::string HolderPod(const std::string& holder_identity);

}  // namespace zm::meshctl::kube
