#include "agent/node/request_report.h"

#include <utility>

namespace zm::agent {
namespace {

std::string KeyOf(const metrics::RequestMetrics::RouteTotals& t) {
  return t.reporter + '\0' + t.source_workload + '\0' + t.source_namespace + '\0' + t.destination_service + '\0' +
         t.route;
}

// A restarted series (never: the metrics only grow) or a first sight counts from 0.
uint64_t Delta(uint64_t now, uint64_t before) {
  return now >= before ? now - before : now;
}

}  // namespace

void RequestReport::Fill(std::vector<metrics::RequestMetrics::RouteTotals> totals,
                         std::chrono::steady_clock::time_point now, zeromesh::v1::AgentStatus* st) {
  // Past the cap, fold the tail into one "other" entry per reporter so the counts still add up.
  if (totals.size() > kMaxEntries) {
    std::map<std::string, metrics::RequestMetrics::RouteTotals> other;
    for (size_t i = kMaxEntries - 2; i < totals.size(); i++) {
      auto& t = totals[i];
      auto& o = other[t.reporter];
      if (o.reporter.empty()) {
        o.reporter = t.reporter;
        o.source_workload = o.source_namespace = o.destination_service = o.route = "other";
        o.latency_counts.assign(t.latency_counts.size(), 0);
      }
      o.requests += t.requests;
      o.failures += t.failures;
      for (size_t b = 0; b < o.latency_counts.size() && b < t.latency_counts.size(); b++) {
        o.latency_counts[b] += t.latency_counts[b];
      }
    }
    totals.resize(kMaxEntries - 2);
    for (auto& [r, o] : other) totals.push_back(std::move(o));
  }
  std::lock_guard lock(mu_);
  double window = has_previous_ ? std::chrono::duration<double>(now - previous_at_).count() : 0;
  for (const double b : metrics::RequestMetrics::DurationBoundsSeconds()) st->add_request_latency_bounds_ms(b * 1000);
  std::map<std::string, metrics::RequestMetrics::RouteTotals> current;
  for (auto& t : totals) {
    auto* r = st->add_requests();
    r->set_reporter(t.reporter);
    r->set_source_workload(t.source_workload);
    r->set_source_namespace(t.source_namespace);
    r->set_destination_service(t.destination_service);
    r->set_route(t.route);
    r->set_requests(t.requests);
    r->set_failures(t.failures);
    r->set_window_seconds(window);
    std::string key = KeyOf(t);
    auto prev = previous_.find(key);
    const metrics::RequestMetrics::RouteTotals* p = prev == previous_.end() ? nullptr : &prev->second;
    // The first report has no window: its counts go back to the agent's start, not to a known time.
    if (has_previous_) {
      r->set_window_requests(Delta(t.requests, p ? p->requests : 0));
      r->set_window_failures(Delta(t.failures, p ? p->failures : 0));
      for (size_t b = 0; b < t.latency_counts.size(); b++) {
        uint64_t before = p && b < p->latency_counts.size() ? p->latency_counts[b] : 0;
        r->add_window_latency_counts(Delta(t.latency_counts[b], before));
      }
    }
    current.emplace(std::move(key), std::move(t));
  }
  previous_ = std::move(current);
  previous_at_ = now;
  has_previous_ = true;
}

}  // namespace zm::agent
