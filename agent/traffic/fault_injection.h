// Fault injection per route rule (a ServicePolicy's spec.http.faultInjection, Istio's VirtualService fault, Kuma's
// MeshFaultInjection): which requests the source node proxy aborts or delays. The draws are parameters so tests can
// choose them; the proxy passes FaultDraw(stream).
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

// The draws the proxy passes: per worker thread, one low-discrepancy (Weyl) sequence for aborts and one for delays,
// each from a random start. Over any run of requests the share that falls in p % is within a request or two of
// p % (as smooth weighted round robin keeps splits exact), where independent random draws would scatter by the
// binomial spread (about ±7 aborts in 200 at 50 %); the two sequences use rationally independent strides, so abort
// and delay decisions do not follow each other.
enum class FaultStream : uint8_t { kAbort, kDelay };
uint32_t FaultDraw(FaultStream stream);

// The gRPC status an aborted gRPC call gets when the policy names none: gRPC's HTTP-to-gRPC mapping
// (doc/http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
// 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
uint32_t GrpcStatusForHttp(int http_status);

}  // namespace zm::traffic
