// The TCP ports a pod's kubelet probes: what STRICT mode lets the node's own network namespace reach in plaintext
// (docs/security.md "Who may reach a STRICT pod").
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace zm::k8s {

// From the liveness, readiness and startup probes (httpGet, tcpSocket, grpc) of spec.containers and of restartable
// init containers (sidecars, which the kubelet probes too). A named port is resolved against the container's own
// ports, as the kubelet does; an unresolvable name, an out-of-range number and an httpGet with its own `host` (the
// kubelet then dials that host, not the pod) contribute nothing. Sorted, without duplicates.
std::vector<uint32_t> ProbePorts(const nlohmann::json& pod);

}  // namespace zm::k8s
