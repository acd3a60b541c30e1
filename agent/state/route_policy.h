// Per-request settings a ServicePolicy attaches to an HTTPRoute or GRPCRoute rule (GEP-713 policy attachment,
// spec.http): a local rate limit and fault injection, applied by the source node proxy to the requests the rule
// matches (docs/design.md "Rate limits and fault injection per route").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace zm::agent {

// A token bucket of |burst| tokens refilled at |requests| per |interval|, per rule (per {rule, source} when
// |per_source|), on each source node; on a Service (ServiceTrafficPolicy::http_rate_limit) per endpoint pod on its
// destination node. requests 0: no limit.
struct HttpRateLimitPolicy {
  std::string policy;  // "<namespace>/<name>" of the ServicePolicy
  uint32_t requests = 0;
  std::chrono::milliseconds interval{1000};
  uint32_t burst = 0;
  bool per_source = false;
  bool enabled() const { return requests > 0 && interval.count() > 0; }
};

// Istio's VirtualService fault / Kuma's MeshFaultInjection: |abort_percent| % of the rule's requests are answered
// |abort_status| (gRPC: |abort_grpc_status|, 0 = derived from the HTTP status) without reaching a backend;
// |delay_percent| % of the others wait |delay| first. Percentages 0..100, fractional allowed.
struct HttpFaultPolicy {
  std::string policy;
  std::chrono::milliseconds delay{0};
  double delay_percent = 0;
  uint16_t abort_status = 0;  // 0: no abort
  uint8_t abort_grpc_status = 0;
  double abort_percent = 0;
  bool enabled() const { return (delay.count() > 0 && delay_percent > 0) || (abort_status != 0 && abort_percent > 0); }
};

}  // namespace zm::agent
