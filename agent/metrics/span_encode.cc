#include "agent/metrics/span_encode.h"

#include <chrono>

namespace zm::metrics {
namespace {

void Str(otlp::Span* s, const char* key, const std::string& value) {
  if (value.empty()) return;
  auto* kv = s->add_attributes();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

void Int(otlp::Span* s, const char* key, int64_t value) {
  auto* kv = s->add_attributes();
  kv->set_key(key);
  kv->mutable_value()->set_int_value(value);
}

std::string Ip(const net::SockAddr& a) {
  return a.ip.ToString();  // "" when unknown
}

// Host without its port (server.address); a bracketed IPv6 literal keeps its brackets off.
std::string HostOnly(const std::string& authority) {
  if (authority.starts_with('[')) {
    size_t end = authority.find(']');
    return end == std::string::npos ? authority : authority.substr(1, end - 1);
  }
  return authority.substr(0, authority.find(':'));
}

uint64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

uint8_t Nibble(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
  return 0xff;
}

bool GrpcFailed(const proxy::RequestRecord& r) {
  return !r.grpc_status.empty() && r.grpc_status != "0";
}

// A response the mesh made itself instead of the server's: a TrafficPermission denial (403), a rate-limit refusal
// (429) or an injected abort.
bool RefusedByMesh(const proxy::RequestRecord& r) {
  return !r.policy.empty() || r.fault == "ratelimited" || r.fault == "abort";
}

// The HTTP semantic conventions: no response, 5xx, or a failed gRPC call fail any span; 4xx fails a CLIENT span
// only (for a SERVER span it is the client's error, not the server's) unless the mesh refused the request, which is
// the proxy's own verdict and so fails its SERVER span too (Istio users look for denials among error spans).
bool SpanFailed(const proxy::RequestRecord& r, bool client) {
  return GrpcFailed(r) || r.status == 0 || r.status >= 500 || (client && r.status >= 400) || RefusedByMesh(r);
}

// The span status message: what went wrong, else which policy refused the request.
std::string StatusMessage(const proxy::RequestRecord& r) {
  if (!r.error.empty()) return r.error.substr(0, 256);
  if (!r.policy.empty()) return "denied by " + r.policy.substr(0, 200);
  if (!r.fault.empty() && r.fault != "delay") return r.fault + " by " + r.fault_policy.substr(0, 200);
  return "";
}

// error.type of a failed span: what went wrong, else the failing gRPC or HTTP status (the conventions' fallback).
std::string ErrorType(const proxy::RequestRecord& r) {
  if (!r.error.empty()) return r.error.substr(0, 256);
  if (!r.fault.empty() && r.fault != "delay") return r.fault;
  if (GrpcFailed(r)) return r.grpc_status;
  return r.status != 0 ? std::to_string(r.status) : "";
}

}  // namespace

std::string HexToBytes(const std::string& hex) {
  if (hex.size() != 32 && hex.size() != 16) return "";
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    uint8_t hi = Nibble(hex[2 * i]), lo = Nibble(hex[2 * i + 1]);
    if (hi > 15 || lo > 15) return "";
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

bool EncodeSpan(const proxy::RequestRecord& r, otlp::Span* out) {
  if (!r.span.active() || !r.span.sampled()) return false;
  const bool client = r.reporter == proxy::Reporter::kSource;
  out->set_trace_id(HexToBytes(r.span.trace_id));
  out->set_span_id(HexToBytes(r.span.span_id));
  if (!r.span.parent_id.empty()) out->set_parent_span_id(HexToBytes(r.span.parent_id));
  out->set_trace_state(r.tracestate);
  out->set_flags(r.span.flags);
  // No path template is known (an HTTPRoute rule is not one), so the name is the method alone, as the HTTP semantic
  // conventions ask: the path would make names unbounded.
  out->set_name(r.method.empty() ? "HTTP" : r.method);
  out->set_kind(client ? otlp::Span::SPAN_KIND_CLIENT : otlp::Span::SPAN_KIND_SERVER);
  out->set_start_time_unix_nano(UnixNanos(r.wall_start));
  out->set_end_time_unix_nano(
      UnixNanos(r.wall_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(r.duration)));

  Str(out, "http.request.method", r.method);
  Str(out, "url.path", r.path.substr(0, std::min(r.path.find('?'), size_t{1024})));
  if (r.status != 0) Int(out, "http.response.status_code", r.status);
  Str(out, "server.address", HostOnly(r.authority));
  Str(out, "network.peer.address", Ip(client ? r.destination.addr : r.source.addr));
  Str(out, "rpc.grpc.status_code", r.grpc_status);
  const bool failed = SpanFailed(r, client);
  Str(out, "error.type", failed ? ErrorType(r) : r.error.substr(0, 256));
  // The pod this proxy stands for: the client's on the source node, the server's on the destination node.
  const proxy::Peer& own = client ? r.source : r.destination;
  Str(out, "k8s.pod.name", own.workload);
  Str(out, "k8s.namespace.name", own.ns);
  Str(out, "zeromesh.reporter", client ? "source" : "destination");
  Str(out, "zeromesh.source.workload", r.source.workload);
  Str(out, "zeromesh.source.namespace", r.source.ns);
  Str(out, "zeromesh.source.identity", r.source.principal);
  Str(out, "zeromesh.destination.workload", r.destination.workload);
  Str(out, "zeromesh.destination.namespace", r.destination.ns);
  Str(out, "zeromesh.destination.identity", r.destination.principal);
  Str(out, "zeromesh.destination.service", r.destination_service);
  Str(out, "zeromesh.route", r.route);
  if (r.attempts > 1) Int(out, "zeromesh.attempts", r.attempts);
  Str(out, "zeromesh.policy", r.policy);  // the TrafficPermission that denied the request
  Str(out, "zeromesh.fault", r.fault);    // ratelimited, abort or delay, by zeromesh.fault_policy
  Str(out, "zeromesh.fault_policy", r.fault_policy);

  if (failed) {
    out->mutable_status()->set_code(otlp::Status::STATUS_CODE_ERROR);
    out->mutable_status()->set_message(StatusMessage(r));
  }
  return true;
}

otlp::ExportTraceServiceRequest MakeExportRequest(const std::string& node, std::vector<otlp::Span>* spans) {
  otlp::ExportTraceServiceRequest req;
  auto* rs = req.add_resource_spans();
  auto* attr = rs->mutable_resource()->add_attributes();
  attr->set_key("service.name");
  attr->mutable_value()->set_string_value("zeromesh-agent");
  if (!node.empty()) {
    attr = rs->mutable_resource()->add_attributes();
    attr->set_key("k8s.node.name");
    attr->mutable_value()->set_string_value(node);
  }
  auto* ss = rs->add_scope_spans();
  ss->mutable_scope()->set_name("zeromesh.io/node-proxy");
  for (auto& s : *spans) *ss->add_spans() = std::move(s);
  spans->clear();
  return req;
}

}  // namespace zm::metrics
