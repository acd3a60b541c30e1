// Access log: the line format (valid JSON whatever the error text), sampling, the off switch, concurrent writers,
// and an output that goes away.
#include "agent/metrics/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

namespace zm::metrics {
namespace {

net::SockAddr Addr(const char* ip, uint16_t port) {
  return net::SockAddr{*net::IpAddr::Parse(ip), port};
}

proxy::ConnRecord Rec() {
  proxy::ConnRecord r;
  r.reporter = proxy::Reporter::kSource;
  r.flow = "hbone-outbound";
  r.source = {"client", "default", "spiffe://cluster.local/ns/default/sa/client", Addr("10.244.1.11", 40312)};
  r.destination = {"server", "prod", "spiffe://cluster.local/ns/prod/sa/server", Addr("10.244.2.11", 8080)};
  r.sent = 1048576;
  r.received = 65;
  r.start = std::chrono::steady_clock::now();
  return r;
}

// A pipe read to the end in a thread (the log must not block on a full pipe during the test).
struct Sink {
  int fds[2] = {-1, -1};
  std::string data;
  std::thread reader;
  Sink() {
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    reader = std::thread([this] {
      char buf[65536];
      ssize_t n;
      while ((n = read(fds[0], buf, sizeof(buf))) > 0) data.append(buf, static_cast<size_t>(n));
    });
  }
  int fd() const { return fds[1]; }
  std::vector<nlohmann::json> Lines() {  // closes the write end: call once the log is gone
    close(fds[1]);
    reader.join();
    close(fds[0]);
    std::vector<nlohmann::json> out;
    std::istringstream in(data);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

TEST(AccessLogFormat, OneJsonObjectWithIdentitiesBytesAndDecision) {
  auto end = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764158400123));  // 2025-11-26T12:00Z
  std::string line = FormatAccessLogLine(Rec(), end, std::chrono::microseconds(12500));
  ASSERT_EQ(line.back(), '\n');
  ASSERT_EQ(line.find('\n'), line.size() - 1);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2025-11-26T12:00:00.123Z");
  EXPECT_EQ(j["msg"], "access");
  EXPECT_EQ(j["reporter"], "source");
  EXPECT_EQ(j["flow"], "hbone-outbound");
  EXPECT_EQ(j["src.addr"], "10.244.1.11:40312");
  EXPECT_EQ(j["src.workload"], "client");
  EXPECT_EQ(j["src.namespace"], "default");
  EXPECT_EQ(j["src.identity"], "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(j["dst.addr"], "10.244.2.11:8080");
  EXPECT_EQ(j["dst.workload"], "server");
  EXPECT_EQ(j["dst.namespace"], "prod");
  EXPECT_EQ(j["dst.identity"], "spiffe://cluster.local/ns/prod/sa/server");
  EXPECT_EQ(j["bytes_sent"], 1048576);
  EXPECT_EQ(j["bytes_received"], 65);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 12.5);
  EXPECT_EQ(j["decision"], "allow");
  EXPECT_FALSE(j.contains("policy"));
  EXPECT_FALSE(j.contains("error"));
}

TEST(AccessLogFormat, DenialsErrorsAndUnknownPeersStayValidJson) {
  proxy::ConnRecord r = Rec();
  r.reporter = proxy::Reporter::kDestination;
  r.source = {"", "", "", Addr("10.244.1.12", 0)};  // HBONE inbound: no source port; not a workload
  r.decision = proxy::Decision::kDeny;
  r.policy = "deny \"all\"";
  r.error = std::string("bad \\ bytes: \n\t\x01\xff\xc3(");
  auto j = nlohmann::json::parse(FormatAccessLogLine(r, std::chrono::system_clock::now(), {}));
  EXPECT_EQ(j["reporter"], "destination");
  EXPECT_EQ(j["src.addr"], "10.244.1.12");
  EXPECT_FALSE(j.contains("src.workload"));
  EXPECT_FALSE(j.contains("src.identity"));
  EXPECT_EQ(j["decision"], "deny");
  EXPECT_EQ(j["policy"], "deny \"all\"");
  EXPECT_EQ(j["error"], "bad \\ bytes: \n\t\x01\u00ff\u00c3(");
}

TEST(AccessLogFormat, TraceContextFromTheHbonePeer) {
  proxy::ConnRecord r = Rec();
  EXPECT_FALSE(
      nlohmann::json::parse(FormatAccessLogLine(r, std::chrono::system_clock::now(), {})).contains("traceparent"));
  r.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  r.baggage = "userId=alice,isProduction=false";
  auto j = nlohmann::json::parse(FormatAccessLogLine(r, std::chrono::system_clock::now(), {}));
  EXPECT_EQ(j["traceparent"], r.traceparent);
  EXPECT_EQ(j["baggage"], r.baggage);
}

// IPv6 peers: "[v6]:port" (an HTTP authority's form), the bare address without a port; the upstream alike.
TEST(AccessLogFormat, Ipv6AddressesAreBracketedWithTheirPort) {
  proxy::ConnRecord r = Rec();
  r.source.addr = Addr("fd00:10:244:1::b", 40312);
  r.destination.addr = Addr("fd00:10:244:2::b", 8080);
  auto j = nlohmann::json::parse(FormatAccessLogLine(r, std::chrono::system_clock::now(), {}));
  EXPECT_EQ(j["src.addr"], "[fd00:10:244:1::b]:40312");
  EXPECT_EQ(j["dst.addr"], "[fd00:10:244:2::b]:8080");
  r.source.addr = Addr("fd00:10:244:1::b", 0);  // HBONE inbound without a forwarded port
  j = nlohmann::json::parse(FormatAccessLogLine(r, std::chrono::system_clock::now(), {}));
  EXPECT_EQ(j["src.addr"], "fd00:10:244:1::b");

  proxy::RequestRecord q;
  q.source = {"client", "shop", "", Addr("fd00:10:244:1::b", 40312)};
  q.destination = {"web", "shop", "", Addr("fd00:10:244:2::b", 8080)};
  q.method = "GET";
  q.path = "/";
  q.status = 200;
  j = nlohmann::json::parse(FormatRequestLogLine(q, std::chrono::system_clock::now()));
  EXPECT_EQ(j["upstream"], "[fd00:10:244:2::b]:8080");
}

// The L7 path's per-request line: method, path, status, duration, upstream, route and the trace id.
TEST(AccessLogFormat, OneLinePerRequest) {
  proxy::RequestRecord r;
  r.source = {"client", "shop", "spiffe://cluster.local/ns/shop/sa/client", Addr("10.244.1.11", 40312)};
  r.destination = {"web-v2", "shop", "", Addr("10.244.2.11", 8080)};
  r.destination_service = "shop/web-v2";
  r.route = "shop/canary#0";
  r.method = "GET";
  r.path = "/api/items?q=\"x\"";
  r.status = 200;
  r.request_bytes = 78;
  r.response_bytes = 112;
  r.duration = std::chrono::microseconds(1250);
  r.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto j = nlohmann::json::parse(FormatRequestLogLine(r, std::chrono::system_clock::now()));
  EXPECT_EQ(j["msg"], "request");
  EXPECT_EQ(j["reporter"], "source");
  EXPECT_EQ(j["src.workload"], "client");
  EXPECT_EQ(j["dst.service"], "shop/web-v2");
  EXPECT_EQ(j["route"], "shop/canary#0");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/api/items?q=\"x\"");
  EXPECT_EQ(j["status"], 200);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 1.25);
  EXPECT_EQ(j["upstream"], "10.244.2.11:8080");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_FALSE(j.contains("error"));
  EXPECT_EQ(j["attempts"], 1);

  r.attempts = 3;  // two HTTPRoute retries
  EXPECT_EQ(nlohmann::json::parse(FormatRequestLogLine(r, std::chrono::system_clock::now()))["attempts"], 3);
  r.traceparent = "00-zzzz-bad";  // a client's malformed header is not quoted as a trace id
  r.status = 0;
  r.error = "upstream connect failed";
  r.path = std::string(5000, 'a');
  j = nlohmann::json::parse(FormatRequestLogLine(r, std::chrono::system_clock::now()));
  EXPECT_FALSE(j.contains("trace_id"));
  EXPECT_EQ(j["error"], "upstream connect failed");
  EXPECT_EQ(j["path"].get<std::string>().size(), 1024u);
}

// A request the destination proxy denied (TrafficPermission http rules): always logged, with the policy.
TEST(AccessLog, DeniedRequestIsAlwaysLoggedWithItsPolicy) {
  Sink sink;
  {
    AccessLog log({.enabled = true, .sample_rate = 0.0, .fd = sink.fd()});
    proxy::RequestRecord denied;
    denied.reporter = proxy::Reporter::kDestination;
    denied.status = 403;
    denied.method = "POST";
    denied.path = "/public/x";
    denied.policy = "shop/no-debug";
    log.RecordRequest(denied);
    EXPECT_EQ(log.sampled_out(), 0u);
  }
  auto lines = sink.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["reporter"], "destination");
  EXPECT_EQ(lines[0]["status"], 403);
  EXPECT_EQ(lines[0]["decision"], "deny");
  EXPECT_EQ(lines[0]["policy"], "shop/no-debug");
}

// Sampling keeps every failed request (no response or 5xx) and drops only clean ones.
TEST(AccessLog, RequestSamplingKeepsFailures) {
  Sink sink;
  {
    AccessLog log({.enabled = true, .sample_rate = 0.0, .fd = sink.fd()});
    proxy::RequestRecord ok, failed, no_response;
    ok.status = 200;
    failed.status = 503;
    no_response.error = "reset";
    log.RecordRequest(ok);
    log.RecordRequest(failed);
    log.RecordRequest(no_response);
    EXPECT_EQ(log.sampled_out(), 1u);
  }
  auto lines = sink.Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["status"], 503);
  EXPECT_EQ(lines[1]["error"], "reset");
}

TEST(AccessLog, ManyThreadsEveryLineWholeAndCounted) {
  Sink sink;
  constexpr int kThreads = 6, kPerThread = 2000;
  {
    // A buffer that cannot fill: this test is about whole, counted lines from many threads, not about the bound
    // (a starved flusher on a loaded machine must not turn it into a drop test).
    AccessLog log({.enabled = true,
                   .sample_rate = 1.0,
                   .fd = sink.fd(),
                   .flush_interval = std::chrono::milliseconds(5),
                   .max_buffered = size_t{256} << 20});
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&log, t] {
        for (int i = 0; i < kPerThread; ++i) {
          proxy::ConnRecord r = Rec();
          r.sent = static_cast<uint64_t>(t * kPerThread + i);
          log.Record(r);
        }
      });
    }
    for (auto& t : ts) t.join();
    log.Flush();
    EXPECT_EQ(log.written(), static_cast<uint64_t>(kThreads * kPerThread));
    EXPECT_EQ(log.dropped(), 0u);
  }
  auto lines = sink.Lines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<bool> seen(kThreads * kPerThread);
  for (const auto& j : lines) seen.at(j["bytes_sent"].get<size_t>()) = true;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), kThreads * kPerThread);
}

TEST(AccessLog, SamplingKeepsEveryFailureAndTheOffSwitchWritesNothing) {
  Sink sink;
  uint64_t half_written = 0;
  {
    AccessLog none({.enabled = true, .sample_rate = 0.0, .fd = sink.fd()});
    AccessLog half({.enabled = true, .sample_rate = 0.5, .fd = sink.fd()});
    AccessLog off({.enabled = false, .sample_rate = 1.0, .fd = sink.fd()});
    proxy::ConnRecord failed = Rec();
    failed.error = "reset";
    proxy::ConnRecord denied = Rec();
    denied.decision = proxy::Decision::kDeny;
    for (int i = 0; i < 1000; ++i) {
      none.Record(Rec());
      off.Record(failed);
    }
    none.Record(failed);
    none.Record(denied);
    for (int i = 0; i < 4000; ++i) half.Record(Rec());
    none.Flush();
    half.Flush();
    EXPECT_EQ(none.written(), 2u);
    EXPECT_EQ(none.sampled_out(), 1000u);
    EXPECT_EQ(off.written(), 0u);
    EXPECT_GT(half.written(), 1600u);
    EXPECT_LT(half.written(), 2400u);
    EXPECT_EQ(half.written() + half.sampled_out(), 4000u);
    half_written = half.written();
  }
  EXPECT_EQ(sink.Lines().size(), 2u + half_written);
}

TEST(AccessLog, ABrokenOutputDropsLinesInsteadOfHanging) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  close(fds[0]);  // nobody reads: writes fail with EPIPE (SIGPIPE is ignored by test_main)
  AccessLog log({.enabled = true, .sample_rate = 1.0, .fd = fds[1]});
  for (int i = 0; i < 10; ++i) log.Record(Rec());
  log.Flush();
  EXPECT_EQ(log.written(), 0u);
  EXPECT_EQ(log.dropped(), 10u);
  close(fds[1]);
}

TEST(AccessLog, ABoundedBufferDropsWhenTheOutputCannotKeepUp) {
  Sink sink;
  {
    // The flusher waits a long time: everything beyond the buffer cap is dropped and counted, never queued.
    AccessLog log({.enabled = true,
                   .sample_rate = 1.0,
                   .fd = sink.fd(),
                   .flush_interval = std::chrono::hours(1),
                   .max_buffered = 4096});
    for (int i = 0; i < 100; ++i) log.Record(Rec());
    EXPECT_GT(log.dropped(), 50u);
    log.Flush();
    EXPECT_EQ(log.written() + log.dropped(), 100u);
  }
  EXPECT_GT(sink.Lines().size(), 0u);
}

TEST(AccessLog, GrpcStatusIsLoggedAndAFailedCallIsNeverSampledOut) {
  proxy::RequestRecord r;
  r.method = "POST";
  r.path = "/zm.Echo/Who";
  r.status = 200;
  r.grpc_status = "14";
  auto j = nlohmann::json::parse(FormatRequestLogLine(r, std::chrono::system_clock::now()));
  EXPECT_EQ(j["grpc_status"], "14");
  r.grpc_status.clear();
  EXPECT_FALSE(
      nlohmann::json::parse(FormatRequestLogLine(r, std::chrono::system_clock::now())).contains("grpc_status"));
  Sink sink;
  {
    AccessLog log({.enabled = true, .sample_rate = 0.0, .fd = sink.fd()});
    r.grpc_status = "0";  // a successful call: sampled (here: never)
    log.RecordRequest(r);
    r.grpc_status = "14";  // UNAVAILABLE inside a 200: always
    log.RecordRequest(r);
    log.Flush();
  }
  auto lines = sink.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["grpc_status"], "14");
}

}  // namespace
}  // namespace zm::metrics
