// `meshctl routes`: every Gateway API route the controller accepted (TCPRoute, HTTPRoute, GRPCRoute), one row per
// rule, with its parent Service port, what it matches, its filters and its weighted backends (with each one's share
// of the rule's weight). `meshctl services` lists each port's protocol and the routes attached to the Service.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zeromesh/v1/status.pb.h"

namespace zm::meshctl {

nlohmann::json RoutesJson(const zeromesh::v1::ResourceSet& rs);
std::string RenderRoutes(const nlohmann::json& j);

// "ns/name" of each Service -> the routes ("Kind ns/name") that name it as a parent.
std::map<std::string, std::vector<std::string>> RoutesByParent(const zeromesh::v1::ResourceSet& rs);

// The L7 protocol a Service port resolved to: "TCP", "HTTP", "HTTP2" or "GRPC".
std::string ProtocolName(zeromesh::v1::AppProtocol p);

}  // namespace zm::meshctl
