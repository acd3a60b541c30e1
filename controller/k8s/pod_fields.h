// The fields of a Pod the controller reads, and nothing else: the pod cache holds every pod of the cluster, and a pod
// object is mostly what the controller never looks at (env, commands, resources, mounts, container statuses,
// conditions). Kept: metadata (name, namespace, uid, labels, resourceVersion, creationTimestamp), spec.nodeName,
// serviceAccountName, hostNetwork, each container's and init container's name, ports, probes and restartPolicy
// (probe ports: probe_ports.cc), the volumes that name a Secret (ca_exposure.cc), status.phase, podIP(s), hostIP.
// A reader of another field must add it here (k8s_test.cc checks translation is unchanged by the trim).
#pragma once

#include <nlohmann/json.hpp>

namespace zm::k8s {

void TrimPod(nlohmann::json* pod);

}  // namespace zm::k8s
