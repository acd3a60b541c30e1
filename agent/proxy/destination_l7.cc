#include "agent/proxy/destination_l7.h"

#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {

DestinationL7 DestinationL7For(const agent::MeshSnapshot& snap, const sockaddr_in& dst, bool per_request) {
  // Per-request decisions need a parser whatever the port says, fail-closed on bytes it cannot read: the HTTP/2 one
  // on HTTP/2 ports (policy compile counts them as ports where http rules are checked, from the same
  // resolved_protocol), else the HTTP/1.1 one.
  agent::PortProtocol protocol = agent::PortProtocol::kTcp;
  if (snap.FindServiceOfEndpoint(dst.sin_addr.s_addr, ntohs(dst.sin_port), &protocol) == nullptr) {
    return per_request ? DestinationL7::kHttp1 : DestinationL7::kNone;
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
  return per_request ? DestinationL7::kHttp1 : DestinationL7::kNone;
}

}  // namespace zm::proxy
