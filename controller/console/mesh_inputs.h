// What every console page is computed from: one consistent read of the controller's state per request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zeromesh/v1/status.pb.h"

namespace zm::ctrl::console {

// One workload pair's traffic as the agents counted it (controller/traffic: counted once per connection).
struct TrafficPair {
  std::string source;       // "ns/name", or "unknown" when the client is not a mesh workload
  std::string destination;  // "ns/name"
  std::string source_principal;
  bool mtls = false;  // the connection carried a verified identity
  double connections_per_second = 0, bytes_per_second = 0, errors_per_second = 0;
  uint64_t connections_total = 0, bytes_total = 0, denials_total = 0;
};

struct MeshInputs {
  zeromesh::v1::MeshStatus status;
  zeromesh::v1::ResourceSet resources;
  std::vector<TrafficPair> traffic;
  int64_t now_unix = 0;
};

// The MeshConfig's settings (defaults when there is none yet).
struct MeshDefaults {
  std::string trust_domain = "cluster.local";
  zeromesh::v1::Mode default_mode = zeromesh::v1::STRICT;
  zeromesh::v1::Action default_policy = zeromesh::v1::ALLOW;
};
MeshDefaults DefaultsOf(const zeromesh::v1::ResourceSet& rs);

std::string WorkloadKey(const zeromesh::v1::Workload& w);  // "ns/name"
std::string IdentityOf(const zeromesh::v1::Workload& w, const std::string& trust_domain);
// The mode a workload runs in: its own, else the mesh default (UNSPECIFIED never comes out).
zeromesh::v1::Mode ModeOf(const zeromesh::v1::Workload& w, const MeshDefaults& d);
const char* ModeName(zeromesh::v1::Mode m);

}  // namespace zm::ctrl::console
