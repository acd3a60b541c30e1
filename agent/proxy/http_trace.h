// Tracing on the HTTP/1.1 paths (docs/design.md "Tracing"): each request's span is decided from the traceparent it
// carries, and the head sent onwards carries this span's traceparent instead, so the next hop (the destination proxy,
// then the application) is its child. tracestate goes on unchanged.
#pragma once

#include <cstdint>

#include "agent/proxy/http1_codec.h"
#include "agent/proxy/request_record.h"
#include "agent/proxy/trace_span.h"

namespace zm::agent {
class MeshSnapshot;
}

namespace zm::proxy {

// Sets rec->span (and tracestate, authority, wall_start) and rewrites head's traceparent to exactly one: this span's.
void TraceHttpRequest(HttpRequestHead* head, uint32_t ppm, SpanIdSource& ids, RequestRecord* rec);

// A request the proxy answered itself before it went on (denied, rate limited, an injected abort, no route or no
// endpoint) or that ended first: its span is made when it is reported, from the traceparent it came with
// (rec->traceparent), so it still shows in the caller's trace. Call once rec->duration is set; no-op when the request
// already has a span or no request head was read.
void TraceLocalReply(uint32_t ppm, SpanIdSource& ids, RequestRecord* rec);

// The HTTP Service (HTTP/1.1, HTTP/2 or gRPC port) whose endpoint |dst| (pod address and target port) is, "ns/name";
// "" if none.
std::string HttpServiceOf(const agent::MeshSnapshot& snap, const net::SockAddr& dst);

}  // namespace zm::proxy
