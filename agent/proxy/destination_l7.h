// Which per-request handler the destination node proxy puts between the client side (an HBONE stream, a same-node or
// a PERMISSIVE plaintext connection) and the local pod. Asked once per new connection: one hash lookup on the
// snapshot's index of Service pod ports, so every other port keeps its byte relay at that cost only.
//
// Two Services may declare one pod port with different protocols. HTTP/1.1 and HTTP/2 (h2c, gRPC): each connection
// is sniffed (kHttp1OrHttp2). An HTTP protocol and TCP: the HTTP handler, whose byte-stream fallback serves the TCP
// clients, unless the connection's requests must each be decided (per_request): then bytes that are not HTTP are
// refused, as on any HTTP port. Metrics and spans name the first of the HTTP Services by namespace/name.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string_view>

#include "agent/proxy/inbound_http.h"

namespace zm::proxy {

// kHttp1: an InboundHttp (golden metrics, SERVER span, per-request policy; a connection that turns out not to speak
// HTTP/1.1 falls back to a byte stream unless it needs per-request decisions). kHttp2: h2c prior knowledge and gRPC
// (H2Conn's destination role, the same fallback). kHttp1OrHttp2: Services disagree; the H2Conn takes connections
// that open with the HTTP/2 preface and hands any other to an InboundHttp.
enum class DestinationL7 : uint8_t { kNone, kHttp1, kHttp2, kHttp1OrHttp2 };

// The handler for pod port |dst| (pod address and target port, network byte order). |per_request|: the connection's
// AuthzDecision said per_request (TrafficPermission http rules must decide each request).
DestinationL7 DestinationL7For(const agent::MeshSnapshot& snap, const net::SockAddr& dst, bool per_request);

// Which HTTP a connection speaks from its first client bytes: kHttp2 once they are the whole HTTP/2 connection
// preface (RFC 9113 3.4), kHttp1 as soon as they cannot be its start (HTTP/1.1 or not HTTP at all: that handler
// decides), kHttp1OrHttp2 while they may still be. |closed|: no more bytes will come.
DestinationL7 SniffHttpVersion(std::string_view first, bool closed);
// The longest |first| SniffHttpVersion needs: a sniffer never reads past it.
inline constexpr size_t kHttpSniffBytes = 24;

// Starts handler |l7| (not kNone) between |down| (the client side) and |up| (the pod; |up_connecting|: its connect is
// still in progress). Takes both descriptors.
void StartDestinationL7(WorkerContext& ctx, DestinationL7 l7, int down, int up, bool up_connecting,
                        InboundHttp::Params p);

}  // namespace zm::proxy
