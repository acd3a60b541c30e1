// Peak-EWMA latency of one endpoint (Finagle's PeakEwma, Linkerd's and tower's balancer): a sample above the estimate
// replaces it at once (the peak), a lower one is blended in with a weight that grows with the time since the last
// sample, and without samples the estimate decays toward zero, so an endpoint that was slow once gets probed again
// later. Lock-free: every worker thread of the node feeds and reads the same estimate. Header-only: a few lines, and
// the sources that compile balancer.cc (the fuzz targets' too) need no new file.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>

namespace zm::traffic {

class PeakEwma {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::nanoseconds kDecay = std::chrono::seconds(10);

  // |rtt| measured at |now| (time to the response head).
  void Observe(Clock::time_point now, std::chrono::nanoseconds rtt) {
    const double sample = static_cast<double>(std::max<int64_t>(rtt.count(), 0));
    const int64_t t = now.time_since_epoch().count();
    const int64_t last = stamp_.exchange(t, std::memory_order_relaxed);
    const double w = Weight(t - last);
    double cur = cost_.load(std::memory_order_relaxed);
    double next = 0;
    do {
      if (cur < 0 || sample > cur) {
        next = sample;  // the first sample, or a new peak
      } else {
        next = cur * w + sample * (1 - w);
      }
    } while (!cost_.compare_exchange_weak(cur, next, std::memory_order_relaxed));
  }

  // The estimate in nanoseconds at |now|, decayed since the last sample; negative when there was none yet.
  double Estimate(Clock::time_point now) const {
    const double cost = cost_.load(std::memory_order_relaxed);
    if (cost < 0) return cost;
    return cost * Weight(now.time_since_epoch().count() - stamp_.load(std::memory_order_relaxed));
  }

 private:
  // The share an estimate keeps after |elapsed_ns|: e^(-elapsed / kDecay).
  static double Weight(int64_t elapsed_ns) {
    if (elapsed_ns <= 0) return 1;
    return std::exp(-static_cast<double>(elapsed_ns) / static_cast<double>(kDecay.count()));
  }

  std::atomic<double> cost_{-1};  // nanoseconds; < 0: no sample yet
  std::atomic<int64_t> stamp_{0};
};

}  // namespace zm::traffic
