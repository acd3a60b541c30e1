// The agent's per route request aggregates for the controller (AgentStatus.requests): the request metrics summed
// over method and code per route, failures = 5xx, no response or a non-OK gRPC status, and windows as differences
// between reports.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>

#include "agent/metrics/request_metrics.h"
#include "agent/node/request_report.h"

namespace zm::agent {
namespace {

using namespace std::chrono_literals;

proxy::RequestRecord Req(const std::string& route, int status, std::chrono::milliseconds took,
                         const std::string& method = "GET") {
  proxy::RequestRecord r;
  r.source.workload = "frontend";
  r.source.ns = "shop";
  r.destination.workload = "backend-v1";
  r.destination.ns = "shop";
  r.destination_service = "shop/backend";
  r.route = route;
  r.status = status;
  r.method = method;
  r.duration = took;
  return r;
}

TEST(RequestReport, TotalsPerRoute) {
  prometheus::Registry reg;
  metrics::RequestMetrics m(reg);
  for (int i = 0; i < 7; i++) m.Record(Req("shop/canary#0", 200, 2ms));
  m.Record(Req("shop/canary#0", 503, 2ms, "POST"));
  m.Record(Req("shop/canary#0", 0, 40ms));
  m.Record(Req("shop/canary#0", 404, 2ms));  // a client error is no failure of the service
  auto grpc = [&](const std::string& status, int http) {
    auto r = Req("shop/grpc#0", http, 1ms, "POST");
    r.grpc_status = status;
    m.Record(r);
  };
  grpc("0", 200);
  grpc("14", 200);  // UNAVAILABLE as a trailers-only answer: a failure although HTTP said 200
  grpc("14", 503);  // counted once, as the 5xx it also is
  m.Record(Req("", 200, 2ms));
  auto totals = m.Totals();
  ASSERT_EQ(totals.size(), 3u);
  std::map<std::string, metrics::RequestMetrics::RouteTotals> by_route;
  for (const auto& t : totals) by_route[t.route] = t;
  const auto& none = by_route["none"];
  const auto& canary = by_route["shop/canary#0"];
  EXPECT_EQ(by_route["shop/grpc#0"].requests, 3u);
  EXPECT_EQ(by_route["shop/grpc#0"].failures, 2u);
  EXPECT_EQ(none.requests, 1u);
  EXPECT_EQ(canary.requests, 10u);
  EXPECT_EQ(canary.failures, 2u);
  EXPECT_EQ(canary.reporter, "source");
  EXPECT_EQ(canary.destination_service, "shop/backend");
  const auto& bounds = metrics::RequestMetrics::DurationBoundsSeconds();
  ASSERT_EQ(canary.latency_counts.size(), bounds.size() + 1);
  uint64_t sum = 0;
  for (size_t i = 0; i < canary.latency_counts.size(); i++) {
    sum += canary.latency_counts[i];
    if (canary.latency_counts[i] == 9) {
      EXPECT_EQ(bounds[i], 0.0025);  // the 2 ms ones
    }
    if (canary.latency_counts[i] == 1) {
      EXPECT_EQ(bounds[i], 0.05);  // the 40 ms one
    }
  }
  EXPECT_EQ(sum, 10u);
}

TEST(RequestReport, WindowsAreDifferencesBetweenReports) {
  prometheus::Registry reg;
  metrics::RequestMetrics m(reg);
  RequestReport report;
  auto t0 = std::chrono::steady_clock::time_point() + 100s;
  for (int i = 0; i < 5; i++) m.Record(Req("shop/canary#0", 200, 2ms));

  zeromesh::v1::AgentStatus first;
  report.Fill(m.Totals(), t0, &first);
  ASSERT_EQ(first.requests_size(), 1);
  EXPECT_EQ(first.requests(0).requests(), 5u);
  EXPECT_EQ(first.requests(0).window_seconds(), 0);  // no previous report: no window
  EXPECT_EQ(first.requests(0).window_latency_counts_size(), 0);
  EXPECT_EQ(first.request_latency_bounds_ms_size(),
            static_cast<int>(metrics::RequestMetrics::DurationBoundsSeconds().size()));
  EXPECT_DOUBLE_EQ(first.request_latency_bounds_ms(0), 0.5);

  for (int i = 0; i < 3; i++) m.Record(Req("shop/canary#0", 500, 2ms));
  m.Record(Req("shop/other#1", 200, 2ms));  // a route first seen in this window counts from 0
  zeromesh::v1::AgentStatus second;
  report.Fill(m.Totals(), t0 + 10s, &second);
  ASSERT_EQ(second.requests_size(), 2);
  for (const auto& r : second.requests()) {
    EXPECT_DOUBLE_EQ(r.window_seconds(), 10);
    uint64_t in_buckets = 0;
    for (uint64_t c : r.window_latency_counts()) in_buckets += c;
    EXPECT_EQ(in_buckets, r.window_requests());
    if (r.route() == "shop/canary#0") {
      EXPECT_EQ(r.requests(), 8u);
      EXPECT_EQ(r.failures(), 3u);
      EXPECT_EQ(r.window_requests(), 3u);
      EXPECT_EQ(r.window_failures(), 3u);
    } else {
      EXPECT_EQ(r.window_requests(), 1u);
    }
  }
}

TEST(RequestReport, FoldsPastTheCap) {
  std::vector<metrics::RequestMetrics::RouteTotals> totals;
  for (size_t i = 0; i < RequestReport::kMaxEntries + 50; i++) {
    metrics::RequestMetrics::RouteTotals t;
    t.reporter = "source";
    t.route = "r" + std::to_string(i);
    t.requests = 1;
    t.latency_counts = {1, 0};
    totals.push_back(t);
  }
  RequestReport report;
  zeromesh::v1::AgentStatus st;
  report.Fill(totals, std::chrono::steady_clock::now(), &st);
  EXPECT_LE(st.requests_size(), static_cast<int>(RequestReport::kMaxEntries));
  uint64_t sum = 0;
  for (const auto& r : st.requests()) sum += r.requests();
  EXPECT_EQ(sum, RequestReport::kMaxEntries + 50);
  EXPECT_EQ(st.requests(st.requests_size() - 1).route(), "other");
}

}  // namespace
}  // namespace zm::agent
