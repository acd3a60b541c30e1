// Agent metrics: names and labels per Prometheus conventions, byte accounting, the cardinality cap, denials, TLS
// failure reasons, and (when promtool is installed) the exposition as Prometheus itself checks it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <prometheus/check_names.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "agent/metrics/agent_health.h"
#include "agent/metrics/connection_metrics.h"
#include "agent/metrics/request_metrics.h"
#include "agent/metrics/telemetry.h"
#include "agent/proxy/request_record.h"
#include "common/metrics/metrics_hub.h"

namespace zm::metrics {
namespace {

proxy::ConnRecord Rec(const std::string& src, const std::string& dst,
                      proxy::Reporter reporter = proxy::Reporter::kSource) {
  proxy::ConnRecord r;
  r.reporter = reporter;
  r.flow = "hbone-outbound";
  r.source = {src, "default", "spiffe://cluster.local/ns/default/sa/" + src, {}};
  r.destination = {dst, "default", "spiffe://cluster.local/ns/default/sa/" + dst, {}};
  return r;
}

// Value of the sample of |name| whose labels include all of |want|; -1 when absent.
double Value(const MetricsHub& hub, const std::string& name, const std::map<std::string, std::string>& want) {
  for (const auto& f : hub.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      size_t matched = 0;
      for (const auto& l : m.label) matched += want.count(l.name) && want.at(l.name) == l.value;
      if (matched != want.size()) continue;
      if (f.type == prometheus::MetricType::Counter) return m.counter.value;
      if (f.type == prometheus::MetricType::Histogram) return static_cast<double>(m.histogram.sample_count);
      return m.gauge.value;
    }
  }
  return -1;
}

size_t SampleCount(const MetricsHub& hub, const std::string& name) {
  for (const auto& f : hub.Collect()) {
    if (f.name == name) return f.metric.size();
  }
  return 0;
}

TEST(ConnectionMetrics, CountsOpenBytesCloseAndDuration) {
  MetricsHub hub;
  ConnectionMetrics m(hub.registry());
  proxy::ConnRecord r = Rec("client", "server");
  r.opened = true;
  r.start = std::chrono::steady_clock::now();
  m.Open(r);
  r.sent = 1000;
  m.Progress(r);
  r.sent = 1500;
  r.received = 42;
  m.Close(r);
  std::map<std::string, std::string> pair = {{"reporter", "source"},
                                             {"source_workload", "client"},
                                             {"destination_workload", "server"},
                                             {"source_principal", "spiffe://cluster.local/ns/default/sa/client"}};
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_opened_total", pair), 1);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_closed_total", pair), 1);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", pair), 1500);  // not 2500: progress is not counted twice
  EXPECT_EQ(Value(hub, "zeromesh_tcp_received_bytes_total", pair), 42);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connection_duration_seconds", pair), 1);
}

TEST(ConnectionMetrics, TrackerReportsLongFlowsBeforeTheyClose) {
  MetricsHub hub;
  Telemetry t(hub, {});
  proxy::ConnTracker track;
  track.Open(&t, Rec("a", "b"));
  const uint64_t chunk = proxy::ConnTracker::kProgressBytes / 4;
  for (int i = 0; i < 6; ++i) track.AddSent(chunk);
  std::map<std::string, std::string> pair = {{"source_workload", "a"}, {"destination_workload", "b"}};
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", pair), 4 * chunk);  // one progress report so far
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_closed_total", pair), 0);
  track.Close();
  track.Close();  // once only
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", pair), 6 * chunk);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_closed_total", pair), 1);
}

TEST(ConnectionMetrics, CardinalityIsCappedWithAnOtherBucket) {
  MetricsHub hub;
  ConnectionMetrics m(hub.registry(), /*max_series=*/3);
  for (int round = 0; round < 2; ++round) {  // known label sets do not use up the cap again
    for (int i = 0; i < 5; ++i) {
      proxy::ConnRecord r = Rec("c" + std::to_string(i), "server");
      r.opened = true;
      m.Open(r);
      r.sent = 10;
      m.Close(r);
    }
  }
  EXPECT_EQ(m.series(), 3u);
  EXPECT_EQ(SampleCount(hub, "zeromesh_tcp_sent_bytes_total"), 4u);  // 3 + "other"
  std::map<std::string, std::string> other = {{"reporter", "source"},
                                              {"source_workload", "other"},
                                              {"source_principal", "other"},
                                              {"destination_workload", "other"},
                                              {"destination_namespace", "other"}};
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_opened_total", other), 4);  // c3, c4 twice
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", other), 40);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", {{"source_workload", "c0"}}), 20);
  EXPECT_EQ(Value(hub, "zeromesh_metrics_label_overflow_total", {}), 4);
}

TEST(ConnectionMetrics, SameNodeIsReportedByBothEndsAndUnknownSidesAreLabelled) {
  MetricsHub hub;
  ConnectionMetrics m(hub.registry());
  proxy::ConnRecord r = Rec("a", "b");
  r.same_node = true;
  r.opened = true;
  m.Open(r);
  r.sent = 7;
  m.Close(r);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", {{"reporter", "source"}, {"source_workload", "a"}}), 7);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_sent_bytes_total", {{"reporter", "destination"}, {"source_workload", "a"}}), 7);

  proxy::ConnRecord pass = Rec("a", "");
  pass.destination = {};
  pass.opened = true;
  m.Open(pass);
  m.Close(pass);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_closed_total",
                  {{"destination_workload", "unknown"}, {"destination_principal", "unknown"}}),
            1);
}

TEST(ConnectionMetrics, DenialsByPolicyAndTlsFailuresByReason) {
  MetricsHub hub;
  ConnectionMetrics m(hub.registry());
  // Reasons exist (at 0) before anything fails, so alerts and rate() work from the start.
  EXPECT_EQ(Value(hub, "zeromesh_tls_handshake_failures_total", {{"reason", "peer_verification"}}), 0);
  m.TlsFailure(proxy::TlsFailure::kPeerVerification);
  m.TlsFailure(proxy::TlsFailure::kPeerVerification);
  m.TlsFailure(proxy::TlsFailure::kTimeout);
  EXPECT_EQ(Value(hub, "zeromesh_tls_handshake_failures_total", {{"reason", "peer_verification"}}), 2);
  EXPECT_EQ(Value(hub, "zeromesh_tls_handshake_failures_total", {{"reason", "timeout"}}), 1);

  for (size_t i = 0; i < ConnectionMetrics::kMaxPolicies + 10; ++i) {
    proxy::ConnRecord r = Rec("a", "b", proxy::Reporter::kDestination);
    r.decision = proxy::Decision::kDeny;
    r.policy = i < 3 ? "deny-a" : "p" + std::to_string(i);
    m.Close(r);  // refused: never opened
  }
  EXPECT_EQ(Value(hub, "zeromesh_policy_denials_total", {{"policy", "deny-a"}}), 3);
  EXPECT_EQ(Value(hub, "zeromesh_tcp_connections_closed_total", {}), -1);  // denied connections were not relayed
  EXPECT_EQ(SampleCount(hub, "zeromesh_policy_denials_total"), ConnectionMetrics::kMaxPolicies + 1);
  EXPECT_GT(Value(hub, "zeromesh_policy_denials_total", {{"policy", "other"}}), 0);
}

// What the agent sends the controller in its status reports: the same counters, and denials per label set.
TEST(ConnectionMetrics, SnapshotHasEveryPairsCountsAndDenials) {
  MetricsHub hub;
  ConnectionMetrics m(hub.registry(), /*max_series=*/3);
  for (int i = 0; i < 2; ++i) {
    proxy::ConnRecord r = Rec("client", "server");
    r.opened = true;
    r.start = std::chrono::steady_clock::now();
    m.Open(r);
    r.sent = 100;
    r.received = 2000;
    m.Close(r);
  }
  proxy::ConnRecord denied = Rec("client", "server");
  denied.decision = proxy::Decision::kDeny;
  denied.policy = "p";
  m.Close(denied);  // the relayed pair's label set: merged
  proxy::ConnRecord other = Rec("intruder", "server", proxy::Reporter::kDestination);
  other.decision = proxy::Decision::kDeny;
  m.Close(other);  // never relayed: a pair of its own
  m.Close(other);

  auto snap = m.Snapshot(100);
  ASSERT_EQ(snap.size(), 2u);
  const auto& relayed = snap[0].labels.source_workload == "client" ? snap[0] : snap[1];
  const auto& refused = snap[0].labels.source_workload == "client" ? snap[1] : snap[0];
  EXPECT_EQ(relayed.labels.reporter, "source");
  EXPECT_EQ(relayed.labels.destination_workload, "server");
  EXPECT_EQ(relayed.opened, 2u);
  EXPECT_EQ(relayed.closed, 2u);
  EXPECT_EQ(relayed.sent, 200u);
  EXPECT_EQ(relayed.received, 4000u);
  EXPECT_EQ(relayed.denials, 1u);
  EXPECT_EQ(refused.labels.reporter, "destination");
  EXPECT_EQ(refused.opened, 0u);
  EXPECT_EQ(refused.denials, 2u);
  // Denials create no relayed series in /metrics.
  EXPECT_EQ(SampleCount(hub, "zeromesh_tcp_connections_opened_total"), 1u);
  EXPECT_EQ(m.Snapshot(1).size(), 1u);  // bounded by the caller

  // Past the cap, denied label sets count under the overflow ("other") set of their reporter.
  for (int i = 0; i < 5; ++i) {
    proxy::ConnRecord r = Rec("x" + std::to_string(i), "server", proxy::Reporter::kDestination);
    r.decision = proxy::Decision::kDeny;
    m.Close(r);
  }
  uint64_t denials = 0, others = 0;
  for (const auto& p : m.Snapshot(100)) {
    denials += p.denials;
    others += p.labels.source_workload == "other";
  }
  EXPECT_EQ(denials, 1u + 2 + 5);
  EXPECT_EQ(others, 1u);
  EXPECT_LE(m.Snapshot(100).size(), 3u + 1);
}

proxy::RequestRecord Req(const std::string& src, const std::string& dst, int status,
                         const std::string& method = "GET") {
  proxy::RequestRecord r;
  r.source = {src, "shop", "spiffe://cluster.local/ns/shop/sa/" + src, {}};
  r.destination = {dst, "shop", "spiffe://cluster.local/ns/shop/sa/" + dst, {}};
  r.destination_service = "shop/" + dst;
  r.route = "shop/canary#0";
  r.method = method;
  r.path = "/items/42";  // never a label
  r.status = status;
  r.request_bytes = 120;
  r.response_bytes = 4000;
  r.duration = std::chrono::milliseconds(3);
  return r;
}

// Golden request metrics: counted by code, route and Service; sizes and durations observed; bounded labels.
TEST(RequestMetrics, ByResponseCodeWithDurationsAndSizes) {
  MetricsHub hub;
  RequestMetrics m(hub.registry());
  for (int i = 0; i < 3; ++i) m.Record(Req("web", "api-v1", 200));
  m.Record(Req("web", "api-v1", 503));
  m.Record(Req("web", "api-v1", 0));            // no response at all
  m.Record(Req("web", "api-v1", 200, "BREW"));  // a made-up method is "other"
  const std::map<std::string, std::string> base = {{"reporter", "source"},
                                                   {"source_workload", "web"},
                                                   {"destination_workload", "api-v1"},
                                                   {"destination_service", "shop/api-v1"},
                                                   {"route", "shop/canary#0"}};
  auto with = [&](std::map<std::string, std::string> more) {
    more.insert(base.begin(), base.end());
    return more;
  };
  EXPECT_EQ(Value(hub, "zeromesh_requests_total", with({{"response_code", "200"}, {"request_method", "GET"}})), 3);
  EXPECT_EQ(Value(hub, "zeromesh_requests_total", with({{"response_code", "503"}})), 1);
  EXPECT_EQ(Value(hub, "zeromesh_requests_total", with({{"response_code", "0"}})), 1);
  EXPECT_EQ(Value(hub, "zeromesh_requests_total", with({{"request_method", "other"}})), 1);
  EXPECT_EQ(
      Value(hub, "zeromesh_request_duration_seconds", with({{"response_code", "200"}, {"request_method", "GET"}})),
      3);  // histogram sample count
  EXPECT_EQ(Value(hub, "zeromesh_response_bytes", with({{"response_code", "503"}})), 1);
  for (const auto& f : hub.Collect()) {
    for (const auto& metric : f.metric) {
      for (const auto& l : metric.label) EXPECT_NE(l.value, "/items/42") << f.name << " has the path as a label";
    }
  }
}

// HTTPRoute retries: the tries after the first, counted in the request's series (same labels, same cap).
TEST(RequestMetrics, RetriesCountTriesAfterTheFirst) {
  MetricsHub hub;
  RequestMetrics m(hub.registry());
  proxy::RequestRecord once = Req("web", "api-v1", 200);
  m.Record(once);  // attempts 1: no retry
  proxy::RequestRecord thrice = once;
  thrice.attempts = 3;
  m.Record(thrice);
  proxy::RequestRecord twice = once;
  twice.attempts = 2;
  m.Record(twice);
  EXPECT_EQ(Value(hub, "zeromesh_request_retries_total",
                  {{"source_workload", "web"}, {"route", "shop/canary#0"}, {"response_code", "200"}}),
            3);
  EXPECT_EQ(Value(hub, "zeromesh_requests_total", {{"source_workload", "web"}, {"response_code", "200"}}), 3);
}

TEST(RequestMetrics, LabelSetsAreCappedButCodesStayVisible) {
  MetricsHub hub;
  RequestMetrics m(hub.registry(), 2);
  m.Record(Req("a", "b", 200));
  m.Record(Req("c", "d", 200));
  m.Record(Req("e", "f", 500));  // third label set: "other", keeping reporter and code
  m.Record(Req("g", "h", 500));
  EXPECT_EQ(m.series(), 2u);
  EXPECT_EQ(Value(hub, "zeromesh_requests_total",
                  {{"source_workload", "other"}, {"response_code", "500"}, {"reporter", "source"}}),
            2);
  EXPECT_EQ(Value(hub, "zeromesh_request_metrics_label_overflow_total", {}), 2);
}

// Every family the agent exports: zeromesh_ prefix, valid names, counters end in _total, base units.
TEST(MetricNames, FollowPrometheusConventions) {
  MetricsHub hub;
  Telemetry t(hub, {});
  proxy::ConnRecord r = Rec("a", "b");
  r.decision = proxy::Decision::kDeny;
  r.policy = "p";
  t.OnClose(r);
  proxy::ConnTracker track;
  track.Open(&t, Rec("a", "b"));
  track.Close();
  proxy::RequestRecord req;
  req.method = "GET";
  req.status = 200;
  t.OnRequest(req);
  proxy::ProxyStats stats;
  AgentHealth h;
  h.capture = agent::bpf::CaptureStats{};
  h.proxy = &stats;
  h.soonest_cert_expiry_seconds = 10;
  h.controller_connected = true;
  hub.Add(std::make_shared<CallbackCollector>([h] { return HealthFamilies(h); }));
  auto families = hub.Collect();
  ASSERT_GT(families.size(), 30u);
  std::set<std::string> seen;
  for (const auto& f : families) {
    SCOPED_TRACE(f.name);
    EXPECT_TRUE(seen.insert(f.name).second) << "duplicate family";
    EXPECT_TRUE(prometheus::CheckMetricName(f.name));
    EXPECT_EQ(f.name.rfind("zeromesh_", 0), 0u);
    EXPECT_FALSE(f.help.empty());
    bool total = f.name.size() > 6 && f.name.compare(f.name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(total, f.type == prometheus::MetricType::Counter);
    EXPECT_EQ(f.name.find("millis"), std::string::npos);  // base units: seconds, bytes
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) EXPECT_TRUE(prometheus::CheckLabelName(l.name)) << l.name;
    }
  }
  for (const char* want : {"zeromesh_tcp_connections_opened_total", "zeromesh_tcp_connections_closed_total",
                           "zeromesh_tcp_sent_bytes_total", "zeromesh_tcp_received_bytes_total",
                           "zeromesh_tcp_connection_duration_seconds", "zeromesh_policy_denials_total",
                           "zeromesh_tls_handshake_failures_total", "zeromesh_bpf_programs_attached",
                           "zeromesh_pod_veths_attached", "zeromesh_local_pods", "zeromesh_config_version",
                           "zeromesh_certificate_expiry_seconds", "zeromesh_controller_connected",
                           "zeromesh_bpf_captured_total", "zeromesh_proxy_accepted_total", "zeromesh_requests_total",
                           "zeromesh_request_duration_seconds", "zeromesh_request_bytes", "zeromesh_response_bytes"}) {
    EXPECT_TRUE(seen.count(want)) << want;
  }
  // Prometheus' own linter, when installed (Debian package prometheus).
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    // Under tools/test.sh (which installs the prometheus package) a missing promtool is a broken set-up.
    const char* no_skip = std::getenv("ZM_NO_SKIP");
    if (no_skip != nullptr && std::string(no_skip) == "1") FAIL() << "promtool not installed (ZM_NO_SKIP=1)";
    GTEST_SKIP() << "promtool not installed";
  }
  std::string path = ::testing::TempDir() + "/zm_metrics_test.prom";
  std::ofstream(path) << hub.Render();
  EXPECT_EQ(std::system(("promtool check metrics < " + path).c_str()), 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace zm::metrics
