// ServicePolicy attached to a route (Gateway API policy attachment, GEP-713): spec.targetRef names an HTTPRoute or
// GRPCRoute (optionally one rule by sectionName) and spec.http carries the per-request settings the source node proxy
// applies to that route's requests: a local rate limit (token bucket, 429) and fault injection (delay, abort).
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

#include "controller/manifest/manifest.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::manifest {

constexpr const char* kGatewayGroup = "gateway.networking.k8s.io";

// True when spec.targetRef's kind is HTTPRoute or GRPCRoute (the policy is then decoded by DecodeRoutePolicy).
bool IsRouteTarget(const YAML::Node& target);

// spec of a ServicePolicy whose targetRef is a route: targetRef {group, kind, name, sectionName} and spec.http; the
// fields of a Service target are refused by name.
void DecodeRoutePolicy(YamlReader& r, const YAML::Node& spec, zeromesh::v1::ServicePolicy* out);

// spec.http.rateLimit {requests, interval, burst, perSource}: the same on a route target (a bucket per rule, on the
// source node) and on a Service target (a bucket per destination pod, on the destination node).
void DecodeHttpRateLimit(YamlReader& r, const YAML::Node& n, zeromesh::v1::HttpRateLimit* out);

// A percentage 0..100, fractional allowed ("0.5", 50, 12.25); nullopt (reported) when malformed or out of range.
std::optional<double> Percentage(YamlReader& r, const YAML::Node& map, const char* key, const std::string& path);

// Set checks of route-targeted policies: the route must exist (error), an unknown sectionName is a notice (the policy
// applies to nothing until such a rule exists), two policies on the same route and section are an error.
void CheckRoutePolicyRefs(Result* r);

}  // namespace zm::manifest
