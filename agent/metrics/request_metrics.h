// Golden per-request metrics of the L7 path (Istio's standard HTTP metrics, zeromesh_ prefix): requests by response
// code, duration, request and response sizes, HTTPRoute retries (zeromesh_request_retries_total, by the request's
// final response code), per source and destination workload, destination Service and route,
// with `reporter` telling which proxy counted them. Cardinality is bounded like the TCP metrics: at most |max_series|
// label sets, later ones share an "other" set; method and response code are bounded (standard methods and 100-599,
// else "other"), and the path is never a label.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/proxy/request_record.h"

namespace zm::metrics {

class RequestMetrics {
 public:
  static constexpr size_t kDefaultMaxSeries = 2000;

  RequestMetrics(prometheus::Registry& registry, size_t max_series = kDefaultMaxSeries);

  // One short lookup under a lock per request (a hash of the label set), then lock-free adds.
  void Record(const proxy::RequestRecord& r);

  size_t series() const;

  // Requests summed over method and response code per reporter, source workload, destination Service and route: what
  // the agent reports to the controller for `meshctl stat`. Cumulative since start.
  struct RouteTotals {
    std::string reporter, source_workload, source_namespace, destination_service, route;
    uint64_t requests = 0;
    uint64_t failures = 0;                 // 5xx, no response (code 0), and gRPC calls with a status other than OK
    std::vector<uint64_t> latency_counts;  // per bucket of DurationBoundsSeconds(), then one past the last
  };
  std::vector<RouteTotals> Totals() const;
  static const std::vector<double>& DurationBoundsSeconds();

  // The label set a request is counted under (before the cap).
  static prometheus::Labels LabelsOf(const proxy::RequestRecord& r);

 private:
  struct Series {
    prometheus::Counter* requests = nullptr;
    prometheus::Histogram* duration = nullptr;
    prometheus::Histogram* request_bytes = nullptr;
    prometheus::Histogram* response_bytes = nullptr;
    prometheus::Counter* retries = nullptr;
    prometheus::Labels labels;
    // gRPC calls of this series that failed with a non-OK grpc-status under a non-5xx HTTP status (a trailers-only
    // error is an HTTP 200): for the failures Totals() reports, as linkerd counts them; not a Prometheus label.
    std::atomic<uint64_t> grpc_failures{0};
  };
  // A new series for |key| (or the overflow set past the cap). mu_ held.
  Series* Resolve(std::string key, const prometheus::Labels& labels, bool* overflowed);

  const size_t max_series_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& request_bytes_;
  prometheus::Family<prometheus::Histogram>& response_bytes_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Counter& overflowed_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Series>> by_key_;
  std::unordered_map<std::string, std::unique_ptr<Series>> overflow_;  // by reporter and response code
};

}  // namespace zm::metrics
