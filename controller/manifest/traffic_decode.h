// Decoding of the traffic-management kinds: TCPRoute (Gateway API mesh form) and ServicePolicy; the cross-resource
// checks (references to Services, one route per parent port, one policy per Service).
#pragma once

#include <google/protobuf/repeated_ptr_field.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "controller/manifest/manifest.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::manifest {

constexpr const char* kGatewayApiVersion = "gateway.networking.k8s.io/v1alpha2";
// HTTPRoute and GRPCRoute are standard (v1) kinds; TCPRoute is still experimental (v1alpha2).
constexpr const char* kGatewayV1ApiVersion = "gateway.networking.k8s.io/v1";
// Gateway API's own CRD limits (maxItems), so both modes refuse what the API server would.
constexpr size_t kMaxParentRefs = 32;
constexpr size_t kMaxBackendRefs = 16;

void DecodeTcpRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                    zeromesh::v1::TcpRoute* out);
void DecodeServicePolicy(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                         zeromesh::v1::ServicePolicy* out);
// Shared by every route kind (TCPRoute here, HTTPRoute and GRPCRoute in l7_route_decode.cc).
std::string Idx(const std::string& path, size_t i);  // "path[i]"
// group must be the core group and kind Service (required for parentRefs, whose Gateway API default is Gateway).
void CheckServiceKind(YamlReader& r, const YAML::Node& ref, const std::string& path, bool kind_required);
// spec.parentRefs: 1..32 Services of the route's own namespace.
void DecodeParentRefs(YamlReader& r, const YAML::Node& spec, const std::string& ns,
                      google::protobuf::RepeatedPtrField<zeromesh::v1::ParentRef>* out);
// One backendRef (a Service port; weight left to the caller) whose keys are limited to `allowed`; false if not a map
// of those keys.
bool DecodeBackendRef(YamlReader& r, const YAML::Node& b, const std::string& path, const std::string& ns,
                      std::initializer_list<std::string_view> allowed, zeromesh::v1::BackendRef* ref);
// `rule_path`.backendRefs: 1..16 distinct backends, weights 0..1,000,000 (default 1), at least one above 0.
void DecodeBackendRefs(YamlReader& r, const YAML::Node& rule, const std::string& rule_path, const std::string& ns,
                       google::protobuf::RepeatedPtrField<zeromesh::v1::BackendRef>* out);
// `map`.`key` as a duration between 1ms and 1h; nullopt when absent or invalid (reported).
std::optional<uint32_t> DurationMs(YamlReader& r, const YAML::Node& map, const char* key, const std::string& path);

// Appends errors for routes and policies whose references do not resolve within |r|.
void CheckTrafficRefs(Result* r);
// The Service `ns`/`name` as the checks see it (the last of a duplicated name); null when there is none.
using ServiceLookup = std::function<const zeromesh::v1::Service*(const std::string& ns, const std::string& name)>;
// The same with the Services of |r| found by `find_service` (the decode cache keeps them indexed across loads).
void CheckTrafficRefs(Result* r, const ServiceLookup& find_service);

// "500ms", "2s", "1m30s", "1h"; nullopt if malformed.
std::optional<int64_t> ParseDurationMs(const std::string& s);

}  // namespace zm::manifest
