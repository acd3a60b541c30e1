// Fault injection per route rule (a ServicePolicy's spec.http.faultInjection, Istio's VirtualService fault, Kuma's
// MeshFaultInjection): which requests the source node proxy aborts or delays. The draws are parameters so tests can
// choose them; the proxy passes FaultDraw().
#pragma once

#include <chrono>
#include <cstdint>

#include "agent/state/route_policy.h"

namespace zm::traffic {

enum class FaultAction : uint8_t { kNone, kAbort, kDelay };

struct FaultVerdict {
  FaultAction action = FaultAction::kNone;
  std::chrono::milliseconds delay{0};  // kDelay
};

// Whether a request whose draw (uniform over 32 bits) is |draw| falls in |percent| % (0..100, fractional).
bool PercentHit(double percent, uint32_t draw);

// Abort is decided first: an aborted request is answered at once, not delayed too (Envoy would delay, then abort).
FaultVerdict DecideFault(const agent::HttpFaultPolicy& f, uint32_t abort_draw, uint32_t delay_draw);

// A uniform 32-bit draw from this thread's generator.
uint32_t FaultDraw();

// The gRPC status an aborted gRPC call gets when the policy names none: gRPC's HTTP-to-gRPC mapping
// (doc/http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
// 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
uint32_t GrpcStatusForHttp(int http_status);

}  // namespace zm::traffic
