// One proxy span as OTLP (api/otlp/trace.proto), following OpenTelemetry's semantic conventions for HTTP spans: the
// source proxy's span of a request is a CLIENT span, the destination proxy's a SERVER span, and both name the client
// and server workloads (pod, namespace, SPIFFE identity). Built on the worker thread that finished the request.
#pragma once

#include <string>
#include <vector>

#include "agent/proxy/request_record.h"
#include "otlp/trace.pb.h"

namespace zm::metrics {

namespace otlp = ::opentelemetry::proto::collector::trace::v1;

// False when |r| carries no sampled span (tracing off, or not sampled): nothing to export.
bool EncodeSpan(const proxy::RequestRecord& r, otlp::Span* out);

// One Export request: the spans under one resource (service.name = zeromesh-agent, k8s.node.name = |node|).
otlp::ExportTraceServiceRequest MakeExportRequest(const std::string& node, std::vector<otlp::Span>* spans);

// 32 or 16 hex digits -> 16 or 8 bytes; "" for anything else.
std::string HexToBytes(const std::string& hex);

}  // namespace zm::metrics
