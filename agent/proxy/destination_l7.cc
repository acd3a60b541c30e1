#include "agent/proxy/destination_l7.h"

#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {

DestinationL7 DestinationL7For(const agent::MeshSnapshot& snap, const sockaddr_in& dst, bool per_request) {
  // Per-request decisions need a parser: the HTTP/1.1 one, fail-closed (400 and close) on bytes it cannot read, on
  // whichever port the decision came for, until the HTTP/2 handler decides requests itself.
  if (per_request) return DestinationL7::kHttp1;
  agent::PortProtocol protocol = agent::PortProtocol::kTcp;
  if (snap.FindServiceOfEndpoint(dst.sin_addr.s_addr, ntohs(dst.sin_port), &protocol) == nullptr) {
    return DestinationL7::kNone;
  }
  switch (protocol) {
    case agent::PortProtocol::kHttp:
      return DestinationL7::kHttp1;
    case agent::PortProtocol::kHttp2:
    case agent::PortProtocol::kGrpc:
      return DestinationL7::kHttp2;
    case agent::PortProtocol::kTcp:
      break;
  }
  return DestinationL7::kNone;
}

}  // namespace zm::proxy
