// Kubernetes objects -> the same mesh resources universal-mode manifests produce.
//   Workload: every Running pod with spec.nodeName and a status.podIP (not hostNetwork); ip = status.podIP, ips =
//             status.podIPs when there are two (dual-stack; IPv6-only pods too); enrolled when its
//             namespace is labelled zeromesh.io/mesh=enabled, the pod label zeromesh.io/mesh overriding it either way;
//             its mode from the pod label zeromesh.io/mode, else the namespace's (controller/manifest/namespaces.h).
//   Service:  a Service with a ClusterIP (vip = spec.clusterIP, vips = spec.clusterIPs when dual-stack) and TCP
//             ports; endpoints from the ready addresses of its IPv4 and IPv6 EndpointSlices (FQDN ones ignored).
//   Addresses are in canonical text (RFC 5952 for IPv6).
//   TrafficPermission / MeshConfig / ServicePolicy: the CRDs, decoded and validated by the manifest decoder (same
//             schema); TCPRoute: Gateway API's (gateway.networking.k8s.io/v1alpha2, GAMMA form), when installed;
//             its backendRefs into other namespaces only where a ReferenceGrant (v1beta1) there permits them;
//             HTTPRoute / GRPCRoute (gateway.networking.k8s.io/v1) the same way (config only: issue 17).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "controller/k8s/reflector.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/namespaces.h"

namespace zm::k8s {

constexpr const char* kMeshLabel = manifest::kMeshLabel;
constexpr const char* kModeLabel = manifest::kModeLabel;
constexpr const char* kMeshEnabled = manifest::kMeshEnabled;

// The last accepted version of each CRD object ("<Kind>/<namespace>/<name>" -> object): when an update is invalid,
// the previous generation stays in force (same uid only: a deleted and re-created object starts afresh).
using LastGood = std::map<std::string, nlohmann::json>;

struct Objects {
  Reflector::Cache pods, namespaces, services, endpoint_slices, permissions, mesh_configs;
  Reflector::Cache service_policies, tcp_routes, reference_grants, http_routes, grpc_routes;
  const LastGood* last_good = nullptr;
};

// The verdict on one CRD object, written to its status.
struct CrdStatus {
  std::string resource;  // "trafficpermissions" | "meshconfigs" | "servicepolicies"
  std::string ns;        // empty for cluster-scoped
  std::string name;
  int64_t generation = 0;
  bool accepted = false;
  std::string reason;  // "Accepted" | "Invalid"
  std::string message;
  nlohmann::json current_status;  // the object's status as last seen (to skip writes that change nothing)
  // Gateway API routes: the status is per parent (status.parents[], one entry per controller and parentRef) under
  // the route's own API group; `parent_refs` are the Service parents this controller answers for.
  std::string api_prefix;  // "" = the zeromesh.io CRDs'
  nlohmann::json parent_refs;
  // Accepted routes also get ResolvedRefs: True, or False/RefNotPermitted naming these backendRefs ("ns/name:port").
  std::vector<std::string> refs_not_permitted;
  std::string route_kind = "TCPRoute";  // for the RefNotPermitted message
};

// controllerName in Gateway API route status entries.
constexpr const char* kGatewayControllerName = "zeromesh.io/mesh-controller";
constexpr const char* kGatewayApiPrefix = "/apis/gateway.networking.k8s.io/v1alpha2";
constexpr const char* kGatewayV1Prefix = "/apis/gateway.networking.k8s.io/v1";  // HTTPRoute, GRPCRoute

struct Translation {
  std::vector<manifest::Located> resources;  // only valid ones
  // Invalid CRD objects (file = "<Kind>/<ns>/<name>"), and Namespaces and Pods whose zeromesh.io/mode label is
  // neither STRICT nor PERMISSIVE (the label is ignored; a Namespace keeps its last accepted mode).
  std::vector<manifest::Error> errors;
  std::vector<CrdStatus> statuses;
  LastGood accepted;  // what is in force now, for the next pass's Objects::last_good
  size_t workloads = 0, enrolled = 0, services = 0, permissions = 0;
};

Translation Translate(const Objects& objs, const manifest::Limits& limits);

// True if `current` (an object's .status) already says what `s` would write.
bool StatusUpToDate(const CrdStatus& s);
// The merge patch for the status subresource (conditions[type=Accepted], observedGeneration; for routes
// status.parents[] with Accepted and ResolvedRefs).
nlohmann::json StatusPatch(const CrdStatus& s, const std::string& now_rfc3339);

}  // namespace zm::k8s
