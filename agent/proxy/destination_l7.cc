#include "agent/proxy/destination_l7.h"

#include "agent/proxy/h2_conn.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {
namespace {

constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static_assert(kHttp2Preface.size() == kHttpSniffBytes);

}  // namespace

DestinationL7 DestinationL7For(const agent::MeshSnapshot& snap, const net::SockAddr& dst, bool per_request) {
  // A TCP declaration changes nothing: the HTTP handlers pass other bytes on as a byte stream (or refuse them when
  // requests must be decided). Per-request decisions need a parser whatever the port says, fail-closed on bytes it
  // cannot read: the HTTP/2 one on HTTP/2 ports (policy compile counts them as ports where http rules are checked,
  // from the same resolved_protocol), else the HTTP/1.1 one.
  agent::EndpointPort port = snap.FindEndpointPort(dst.ip, dst.port);
  const bool http1 = port.Declares(agent::PortProtocol::kHttp);
  const bool http2 = port.Declares(agent::PortProtocol::kHttp2) || port.Declares(agent::PortProtocol::kGrpc);
  if (http1 && http2) return DestinationL7::kHttp1OrHttp2;
  if (http2) return DestinationL7::kHttp2;
  if (http1 || per_request) return DestinationL7::kHttp1;
  return DestinationL7::kNone;
}

DestinationL7 SniffHttpVersion(std::string_view first, bool closed) {
  if (first.size() >= kHttp2Preface.size()) {
    return first.starts_with(kHttp2Preface) ? DestinationL7::kHttp2 : DestinationL7::kHttp1;
  }
  return kHttp2Preface.starts_with(first) && !closed ? DestinationL7::kHttp1OrHttp2 : DestinationL7::kHttp1;
}

void StartDestinationL7(WorkerContext& ctx, DestinationL7 l7, int down, int up, bool up_connecting,
                        InboundHttp::Params p) {
  switch (l7) {
    case DestinationL7::kHttp1OrHttp2:
      p.http1_too = true;
      [[fallthrough]];
    case DestinationL7::kHttp2:
      H2Conn::StartDestination(ctx, down, up, up_connecting, std::move(p));
      return;
    case DestinationL7::kHttp1:
    case DestinationL7::kNone:  // callers relay kNone themselves; parsing is the safe reading of a mistake
      InboundHttp::Start(ctx, down, up, up_connecting, std::move(p));
      return;
  }
}

}  // namespace zm::proxy
