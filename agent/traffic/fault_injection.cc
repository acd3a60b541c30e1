#include "agent/traffic/fault_injection.h"

#include <random>

namespace zm::traffic {

bool PercentHit(double percent, uint32_t draw) {
  if (!(percent > 0)) return false;  // NaN too
  if (percent >= 100) return true;
  // draw / 2^32 is uniform in [0, 1): hit with probability percent / 100.
  return static_cast<double>(draw) < percent / 100.0 * 4294967296.0;
}

FaultVerdict DecideFault(const agent::HttpFaultPolicy& f, uint32_t abort_draw, uint32_t delay_draw) {
  FaultVerdict v;
  if (f.abort_status != 0 && PercentHit(f.abort_percent, abort_draw)) {
    v.action = FaultAction::kAbort;
  } else if (f.delay.count() > 0 && PercentHit(f.delay_percent, delay_draw)) {
    v.action = FaultAction::kDelay;
    v.delay = f.delay;
  }
  return v;
}

uint32_t FaultDraw(FaultStream stream) {
  // Strides: 2^32 / golden ratio and 2^32 x (sqrt(2) - 1), both odd (every value is visited once per 2^32 draws).
  constexpr uint32_t kAbortStride = 0x9E3779B9u, kDelayStride = 0x6A09E667u;
  thread_local uint32_t abort_at = std::random_device{}(), delay_at = std::random_device{}();
  if (stream == FaultStream::kAbort) return abort_at += kAbortStride;
  return delay_at += kDelayStride;
}

uint32_t GrpcStatusForHttp(int http_status) {
  switch (http_status) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

}  // namespace zm::traffic
