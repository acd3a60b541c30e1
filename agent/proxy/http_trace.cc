#include "agent/proxy/http_trace.h"

#include <algorithm>
#include <chrono>

#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {

void TraceHttpRequest(HttpRequestHead* head, uint32_t ppm, SpanIdSource& ids, RequestRecord* rec) {
  const std::string* tp = head->Header("traceparent");
  rec->span = ChildSpan(tp != nullptr ? std::string_view(*tp) : std::string_view(), ppm, ids);
  if (const std::string* ts = head->Header("tracestate")) rec->tracestate = ts->substr(0, 512);
  if (const std::string* host = head->Header("host")) rec->authority = host->substr(0, 256);
  rec->wall_start = std::chrono::system_clock::now();
  auto& h = head->headers;
  h.erase(std::remove_if(h.begin(), h.end(), [](const auto& kv) { return kv.first == "traceparent"; }), h.end());
  h.emplace_back("traceparent", ToTraceparent(rec->span));
}

void TraceLocalReply(uint32_t ppm, SpanIdSource& ids, RequestRecord* rec) {
  if (rec->span.active() || rec->method.empty()) return;
  rec->span = ChildSpan(rec->traceparent, ppm, ids);
  rec->wall_start =
      std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(rec->duration);
}

std::string HttpServiceOf(const agent::MeshSnapshot& snap, const net::SockAddr& dst) {
  agent::PortProtocol protocol;
  const agent::Service* svc = snap.FindServiceOfEndpoint(dst.ip, dst.port, &protocol);
  return svc != nullptr ? svc->Key() : "";
}

}  // namespace zm::proxy
