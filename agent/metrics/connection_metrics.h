// Per (source workload, destination workload) TCP metrics of the node proxy, plus policy denials and TLS handshake
// failures. Cost model: one short mutex-protected lookup when a connection opens (its series are resolved once and
// kept in the ConnRecord); bytes go to the counters at most every ConnTracker::kProgressBytes and at close, with
// lock-free adds. Cardinality is bounded: at most |max_series| label sets, later ones share an "other" series.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "agent/metrics/conn_labels.h"
#include "agent/proxy/conn_observer.h"

namespace zm::metrics {

class ConnectionMetrics {
 public:
  static constexpr size_t kDefaultMaxSeries = 1000;
  static constexpr size_t kMaxPolicies = 256;

  ConnectionMetrics(prometheus::Registry& registry, size_t max_series = kDefaultMaxSeries);

  void Open(proxy::ConnRecord& r);      // resolves r.sink[], counts the open
  void Progress(proxy::ConnRecord& r);  // adds the bytes not reported yet
  void Close(proxy::ConnRecord& r);     // bytes, closed, duration (opened connections); denials (all)
  void TlsFailure(proxy::TlsFailure why);

  size_t series() const;  // distinct label sets admitted (overflow buckets excluded)

 private:
  struct Series {
    prometheus::Counter* opened;
    prometheus::Counter* closed;
    prometheus::Counter* sent;
    prometheus::Counter* received;
    prometheus::Histogram* duration;
  };
  Series* Resolve(const ConnLabels& labels, proxy::Reporter reporter);  // mu_ held
  Series* Make(const ConnLabels& labels);                               // mu_ held
  static void FlushBytes(proxy::ConnRecord& r);

  const size_t max_series_;
  prometheus::Family<prometheus::Counter>& opened_;
  prometheus::Family<prometheus::Counter>& closed_;
  prometheus::Family<prometheus::Counter>& sent_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& denials_;
  prometheus::Family<prometheus::Counter>& tls_failures_;
  prometheus::Counter& overflowed_;
  std::array<prometheus::Counter*, 7> tls_by_reason_{};

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Series>> by_key_;
  std::unique_ptr<Series> overflow_[2];  // by reporter, made when first needed
  std::unordered_map<std::string, prometheus::Counter*> denials_by_policy_;
};

}  // namespace zm::metrics
