// Decoding of Gateway API HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1) in their mesh (GAMMA) form: Service
// parents, matches, filters, weighted backends, timeouts and retry. Both modes use it (Kubernetes objects go through
// the manifest decoder). Regexes are compiled with RE2, the engine the proxy will match with (linear time).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "controller/manifest/manifest.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::manifest {

// Gateway API's own CRD limits (maxItems / maxLength), so both modes refuse what the API server would.
constexpr size_t kMaxRouteRules = 16;
constexpr size_t kMaxRouteMatches = 64;
constexpr size_t kMaxMatchEntries = 16;  // headers, queryParams, filters, hostnames, header modifier lists
constexpr size_t kMaxRegexLength = 1024;

void DecodeHttpRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                     zeromesh::v1::HttpRoute* out);
void DecodeGrpcRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                     zeromesh::v1::GrpcRoute* out);

}  // namespace zm::manifest
