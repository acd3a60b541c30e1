// The proxies' spans (docs/design.md "Tracing"): each request the source proxy routes gets a CLIENT span and each
// request the destination proxy passes to a pod a SERVER span. This file decides a span's ids and sampling from the
// traceparent the request carries and writes the traceparent sent onwards; agent/metrics turns finished spans into
// OTLP. Parent-based sampling: a valid incoming traceparent keeps its trace id and sampled flag; without one (or an
// invalid one) a new trace starts, sampled with the mesh's ratio.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace zm::proxy {

struct SpanContext {
  std::string trace_id;   // 32 lowercase hex digits; "" when no span was made (tracing off)
  std::string span_id;    // 16 hex: this proxy's span
  std::string parent_id;  // 16 hex: the span of the incoming traceparent; "" for a root span
  uint8_t flags = 0;      // W3C trace flags; bit 0 = sampled
  bool sampled() const { return (flags & 1) != 0; }
  bool active() const { return !trace_id.empty(); }
};

// Ids come from a per-thread generator seeded from the OS: unpredictable enough for telemetry, and no lock.
class SpanIdSource {
 public:
  SpanIdSource();
  explicit SpanIdSource(uint64_t seed) : rng_(seed) {}
  std::string SpanId();   // 16 hex digits, never all zero
  std::string TraceId();  // 32 hex digits, never all zero
  // True with probability |ppm| / 1,000,000.
  bool Sample(uint32_t ppm);

 private:
  std::mt19937_64 rng_;
};

// MeshConfig's tracing.samplingPercentage (0..100) in parts per million (the resolution the proxy samples at).
uint32_t SamplingPpm(double percentage);

// A new span under |incoming| (a request's traceparent header; "" or invalid: a new trace, sampled at |ppm|).
SpanContext ChildSpan(std::string_view incoming, uint32_t ppm, SpanIdSource& ids);

// "00-<trace>-<span>-<flags>": the traceparent a request carries after this span, so the next hop is its child.
std::string ToTraceparent(const SpanContext& s);

}  // namespace zm::proxy
