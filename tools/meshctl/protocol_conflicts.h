// Pod ports that Services declare with different protocols (one HTTP/1.1 and another gRPC, or one HTTP and another
// TCP), as Istio's analyzers report them. The destination proxy serves such a port anyway (docs/design.md,
// "Destination-side golden metrics ... sniffing"), so this is a warning for `meshctl status` and the console, never a
// rejection. A pure function of the resources, for tests.
#pragma once

#include <string>
#include <vector>

#include "zeromesh/v1/status.pb.h"

namespace zm::meshctl {

struct ProtocolConflict {
  std::string message;  // names the Services (namespace/name, port, protocol), the pod port and the pods
  std::string hint;     // what the proxy does with it, and the fix
};

// One entry per pod port and set of disagreeing declarations (the pods sharing both are counted in one entry), in
// pod port order. HTTP2 and GRPC agree (both are HTTP/2).
std::vector<ProtocolConflict> FindProtocolConflicts(const zeromesh::v1::ResourceSet& resources);

}  // namespace zm::meshctl
