// Gateway API ReferenceGrant: decoding, and the decision whether a TCPRoute may use a Service in another namespace.
// One rule for both modes: universal-mode manifests and Kubernetes objects (translate.cc) go through these functions.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "controller/manifest/manifest.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::manifest {

constexpr const char* kReferenceGrantApiVersion = "gateway.networking.k8s.io/v1beta1";
constexpr const char* kGatewayGroup = "gateway.networking.k8s.io";

void DecodeReferenceGrant(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                          ReferenceGrant* out);

// Whether a route of `route_kind` (TCPRoute, HTTPRoute, GRPCRoute) in `route_ns` may send to Service
// `backend_ns`/`backend_name`: always within its own namespace; across namespaces only if a grant in `backend_ns` has
// from {gateway.networking.k8s.io, route_kind, route_ns} and to {core, Service, name empty or backend_name}.
bool BackendRefPermitted(const std::vector<ReferenceGrant>& grants, const std::string& route_ns,
                         const std::string& backend_ns, const std::string& backend_name,
                         const std::string& route_kind = "TCPRoute");

// Removes from `route` the backendRefs no grant permits (Gateway API: a not-permitted ref is not configured; the route
// keeps its other backends, and with none left its connections fail). Returns them as "<ns>/<name>:<port>".
std::vector<std::string> DropUnpermittedBackends(const std::vector<ReferenceGrant>& grants,
                                                 zeromesh::v1::TcpRoute* route);
// The same for HTTPRoute and GRPCRoute backendRefs; a RequestMirror filter whose backend is not permitted is removed
// (its ref is returned too).
std::vector<std::string> DropUnpermittedBackends(const std::vector<ReferenceGrant>& grants,
                                                 zeromesh::v1::HttpRoute* route);
std::vector<std::string> DropUnpermittedBackends(const std::vector<ReferenceGrant>& grants,
                                                 zeromesh::v1::GrpcRoute* route);

// The same explanation everywhere (route status, universal-mode notices).
std::string NotPermittedMessage(const std::string& route_ns, const std::vector<std::string>& refs,
                                const std::string& route_kind = "TCPRoute");

// Universal mode: duplicate grant names are errors; every route (TCPRoute, HTTPRoute, GRPCRoute) loses its
// not-permitted backendRefs, each noted in r->notices.
void ApplyReferenceGrants(Result* r);

}  // namespace zm::manifest
