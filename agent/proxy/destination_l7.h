// Which per-request handler the destination node proxy puts between the client side (an HBONE stream, a same-node or
// a PERMISSIVE plaintext connection) and the local pod. Asked once per new connection: one hash lookup on the
// snapshot's index of HTTP Service ports, so every other port keeps its byte relay at that cost only.
#pragma once

#include <netinet/in.h>

#include <cstdint>

namespace zm::agent {
class MeshSnapshot;
}

namespace zm::proxy {

// kHttp1: an InboundHttp (golden metrics, SERVER span, per-request policy; a connection that turns out not to speak
// HTTP/1.1 falls back to a byte stream unless it needs per-request decisions). kHttp2: h2c prior knowledge and gRPC.
enum class DestinationL7 : uint8_t { kNone, kHttp1, kHttp2 };

// The handler for pod port |dst| (pod address and target port, network byte order). |per_request|: the connection's
// AuthzDecision said per_request (TrafficPermission http rules must decide each request).
DestinationL7 DestinationL7For(const agent::MeshSnapshot& snap, const sockaddr_in& dst, bool per_request);

}  // namespace zm::proxy
