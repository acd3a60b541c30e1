// spec.http of a TrafficPermission: the request conditions the destination node proxy checks per request on HTTP/1.1
// ports (docs/traffic-permissions.md). Decoded with the same precise errors as the rest of the manifest.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "controller/manifest/yaml_reader.h"
#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

constexpr size_t kMaxPermissionHttpEntries = 16;
constexpr size_t kMaxPermissionHttpValues = 32;  // methods or paths of one entry
constexpr size_t kMaxPermissionHttpHeaders = 16;

// spec.http: a list of {methods, paths, headers}; absent or null: none (the permission is L4 only).
void DecodePermissionHttp(YamlReader& r, const YAML::Node& spec, zeromesh::v1::TrafficPermission* p);

// "" when |m| is a method a permission may name (an upper-case RFC 9110 token such as GET or PROPFIND), else why not.
std::string CheckPermissionMethod(const std::string& m);
// "" when |p| is one of the path forms "/exact", "/prefix*", "*suffix" or "*", else why not.
std::string CheckPermissionPath(const std::string& p);

}  // namespace zm::manifest
