// Decoding of the traffic-management kinds: TCPRoute (Gateway API mesh form) and ServicePolicy; the cross-resource
// checks (references to Services, one route per parent port, one policy per Service).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>

#include "controller/manifest/manifest.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::manifest {

constexpr const char* kGatewayApiVersion = "gateway.networking.k8s.io/v1alpha2";

void DecodeTcpRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                    zeromesh::v1::TcpRoute* out);
void DecodeServicePolicy(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                         zeromesh::v1::ServicePolicy* out);
// Appends errors for routes and policies whose references do not resolve within |r|.
void CheckTrafficRefs(Result* r);

// "500ms", "2s", "1m30s", "1h"; nullopt if malformed.
std::optional<int64_t> ParseDurationMs(const std::string& s);

}  // namespace zm::manifest
