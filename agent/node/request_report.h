// Fills AgentStatus.requests (what `meshctl stat` shows) from the request metrics' per route totals: cumulative
// counts, and the difference to the previous report as the window rates and latency percentiles are computed over.
// One instance per status reporter (Fill is thread-safe: a ReportNow may race the periodic report).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/metrics/request_metrics.h"
#include "zeromesh/v1/status.pb.h"

namespace zm::agent {

class RequestReport {
 public:
  // status.proto: at most this many RequestTraffic entries per report; the rest are summed into an "other" entry.
  static constexpr size_t kMaxEntries = 1000;

  void Fill(std::vector<metrics::RequestMetrics::RouteTotals> totals, std::chrono::steady_clock::time_point now,
            zeromesh::v1::AgentStatus* st);

 private:
  std::mutex mu_;
  std::map<std::string, metrics::RequestMetrics::RouteTotals> previous_;  // by route key, as of the last report
  std::chrono::steady_clock::time_point previous_at_{};
  bool has_previous_ = false;
};

}  // namespace zm::agent
