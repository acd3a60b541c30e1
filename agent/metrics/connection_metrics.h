// Per (source workload, destination workload) TCP metrics of the node proxy, plus policy denials and TLS handshake
// failures. Cost model: one short mutex-protected lookup when a connection opens (its series are resolved once and
// kept in the ConnRecord); bytes go to the counters at most every ConnTracker::kProgressBytes and at close, with
// lock-free adds. Cardinality is bounded: at most |max_series| label sets, later ones share an "other" series.
// Snapshot() reads the same counters for the agent's status report (the controller's traffic graph).
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
#include <unordered_set>
#include <vector>

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

  // One label set's cumulative counts since the agent started.
  struct PairTotals {
    ConnLabels labels;
    uint64_t opened = 0, closed = 0, sent = 0, received = 0;
    uint64_t denials = 0;  // refused by a policy (never opened, so counted apart from the relayed series)
  };
  // Every label set with relayed or denied connections, at most |limit| (relayed ones first, the "other" overflow
  // sets included). One pass under the lock that Open takes: call it every few seconds, not per connection.
  std::vector<PairTotals> Snapshot(size_t limit) const;

 private:
  struct Series {
    ConnLabels labels;
    prometheus::Counter* opened;
    prometheus::Counter* closed;
    prometheus::Counter* sent;
    prometheus::Counter* received;
    prometheus::Histogram* duration;
  };
  Series* Resolve(const ConnLabels& labels, proxy::Reporter reporter);  // mu_ held
  Series* Make(const ConnLabels& labels);                               // mu_ held
  void CountDenial(const proxy::ConnRecord& r);                         // mu_ held
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
  // Denials by label set, for Snapshot only: the exported denials family is by policy, and a denied connection must
  // not create (zero) relayed series. Same cap: later label sets count under the overflow set of their reporter.
  struct Denied {
    ConnLabels labels;
    uint64_t count = 0;
  };
  std::unordered_map<std::string, Denied> denials_by_pair_;
};

}  // namespace zm::metrics
