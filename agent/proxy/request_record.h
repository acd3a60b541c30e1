// One HTTP request the node proxy routed (the L7 path, agent/proxy/http1_conn) or checked at the destination
// (agent/proxy/inbound_http): what the golden request metrics and the per-request access log line are made of.
// Filled on the worker thread when the response ends (or the request fails) and handed to ConnObserver::OnRequest;
// the proxy knows nothing about Prometheus or log formats.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "agent/proxy/conn_observer.h"
#include "agent/proxy/trace_span.h"

namespace zm::proxy {

struct RequestRecord {
  Reporter reporter = Reporter::kSource;
  Peer source;                      // the client workload
  Peer destination;                 // the endpoint the request was sent to ("" workload when none was chosen)
  std::string destination_service;  // "ns/name" of the Service the request was routed to (a route's backend)
  std::string route;                // the HTTPRoute rule that matched, "ns/name#index"; "" when none did
  std::string method;               // as sent by the client (a label only when one of the standard methods)
  std::string path;                 // the request target before rewrites: access log only, never a label
  int status = 0;                   // the response status; 0 when no response came (upstream failure)
  uint64_t request_bytes = 0;       // head + body as received from the client
  uint64_t response_bytes = 0;      // head + body as relayed back
  std::chrono::steady_clock::duration duration{};  // request head received -> response end
  std::string traceparent;                         // W3C trace context of the request, "" when none
  std::string error;                               // why it failed ("" for a response, whatever its status)
  uint32_t attempts = 1;  // tries made: 1 + the HTTPRoute retries (zeromesh_request_retries_total counts the latter)
  // A gRPC call's grpc-status (HTTP/2 path: from its trailers or a trailers-only response); "" when none came.
  std::string grpc_status;
  // The policy that denied the request (destination side, answered 403); "" otherwise.
  std::string policy;
  // A route's ServicePolicy (spec.http) acted on the request at the source proxy: "ratelimited" (answered 429),
  // "abort" (an injected fault answered it) or "delay" (held before it went upstream); "" otherwise.
  std::string fault;
  std::string fault_policy;  // that ServicePolicy, "<namespace>/<name>"
  // Tracing (agent/proxy/http_trace.h): this proxy's span of the request, inactive when tracing is off. The span
  // ends at wall_start + duration.
  SpanContext span;
  std::string tracestate;  // propagated unchanged; the span records it
  std::string authority;   // Host: the span's server.address
  std::chrono::system_clock::time_point wall_start{};
};

}  // namespace zm::proxy
