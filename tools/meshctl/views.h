// `meshctl workloads|services|policies|certs|config-dump`: the controller's resources and agent reports as tables
// or JSON. Each returns the JSON form; the Render* functions give the human one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "zeromesh/v1/status.pb.h"

namespace zm::meshctl {

nlohmann::json WorkloadsJson(const zeromesh::v1::ResourceSet& rs);
std::string RenderWorkloads(const nlohmann::json& j);

nlohmann::json ServicesJson(const zeromesh::v1::ResourceSet& rs);
std::string RenderServices(const nlohmann::json& j);

// Per workload: the TrafficPermissions that select it as destination (DENY first, as evaluated), then the default.
nlohmann::json PoliciesJson(const zeromesh::v1::ResourceSet& rs);
std::string RenderPolicies(const nlohmann::json& j);

// Every certificate the agents report; "expiring" marks those within warn_seconds.
nlohmann::json CertsJson(const zeromesh::v1::MeshStatus& st, int64_t now_unix, int64_t warn_seconds);
std::string RenderCerts(const nlohmann::json& j);

// What the controller streams to `node` (every resource: pushes are full sets) and its stream state for that node.
// Null if the controller has never heard of the node.
nlohmann::json ConfigDumpJson(const zeromesh::v1::ResourceSet& rs, const zeromesh::v1::MeshStatus& st,
                              const std::string& node);

nlohmann::json ProtoJson(const google::protobuf::Message& msg);

}  // namespace zm::meshctl
