// Counters of what route ServicePolicies (spec.http) did at the source proxy: requests refused by a local rate limit
// (zeromesh_request_rate_limited_total, answered 429 / gRPC RESOURCE_EXHAUSTED) and faults injected
// (zeromesh_request_faults_injected_total, by fault "abort" / "delay"). Labelled by route rule and policy (bounded by
// the config) and the source workload; at most kMaxSeries label sets per family, later ones count under "other".
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "agent/proxy/request_record.h"

namespace zm::metrics {

class RoutePolicyMetrics {
 public:
  static constexpr size_t kMaxSeries = 2000;

  explicit RoutePolicyMetrics(prometheus::Registry& registry);

  // Counts |r| when a route policy acted on it (RequestRecord::fault set); nothing otherwise.
  void Record(const proxy::RequestRecord& r);

 private:
  prometheus::Counter* Series(prometheus::Family<prometheus::Counter>& family, prometheus::Labels labels);

  prometheus::Family<prometheus::Counter>& rate_limited_;
  prometheus::Family<prometheus::Counter>& faults_;
  std::mutex mu_;
  std::unordered_map<std::string, prometheus::Counter*> series_;  // by family name and label values
};

}  // namespace zm::metrics
