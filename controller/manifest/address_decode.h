// The addresses of a Workload (spec.ip / spec.ips) or a Service (spec.vip / spec.vips) in a manifest: IPv4 or IPv6,
// at most one per family in the list (as Kubernetes' status.podIPs / spec.clusterIPs), the single field among the
// list's when both are given. What the mesh stores is the canonical text (yaml_reader.h CanonicalIp).
#pragma once

#include <string>
#include <vector>

#include "controller/manifest/yaml_reader.h"

namespace zm::manifest {

struct Addresses {
  std::string primary;            // spec.ip (else the list's first); empty when neither is given
  std::vector<std::string> list;  // every address, primary first; empty when there is just the primary
};

// Decodes `spec.<one>` and `spec.<many>`, reporting each bad value (which field, which value, why) through `r`.
// `required`: one of the two must be present.
Addresses DecodeAddresses(YamlReader& r, const YAML::Node& spec, const char* one, const char* many, bool required);

}  // namespace zm::manifest
