// H2Conn's destination role on socketpairs, driven by a real worker event loop: a test nghttp2 client on the client
// side and a test nghttp2 server as the pod. Per-stream TrafficPermission decisions (403, gRPC PERMISSION_DENIED)
// while the other streams of the connection reach the pod, the SERVER span's traceparent, reporter=destination
// records, and the byte-relay fallback for a connection that is not HTTP/2. The source role's HTTPRoute retries: an
// endpoint answering UNAVAILABLE (trailers-only) or dropping its connection is retried on the other, body replayed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/proxy/h2_conn.h"
#include "agent/state/cert_store.h"
#include "tests/unit/proxy/h2_peer.h"
#include "tests/unit/proxy/request_log.h"
#include "tests/unit/proxy/shop_mesh.h"
#include "tests/unit/proxy/worker_thread.h"

namespace zm::proxy {
namespace {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

using Records = testing::RequestLog;

using Peer = testing::H2Peer;

class H2DestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent::Workload client = testing::ShopWorkload("client", "client", "10.244.2.5", "node2");
    agent::Workload pod = testing::ShopWorkload("rpc-0", "rpc", "10.244.1.7", "node1");
    agent::Service svc = testing::ShopService("rpc", "", {90, 9090, agent::PortProtocol::kGrpc}, "10.244.1.7");
    snaps_.Set(std::make_shared<agent::MeshSnapshot>("cluster.local", "node1", agent::MeshMode::kStrict,
                                                     std::vector<agent::Workload>{client, pod},
                                                     std::vector<agent::Service>{svc}));
    opts_.tracing = true;
    opts_.observer = records_;
    // Connection: per request; requests: /shop.Admin/* denied by shop/no-admin, with a reason that needs encoding.
    opts_.authorize = [](const AuthzRequest& r) {
      AuthzDecision d;
      if (r.http == nullptr) {
        d.per_request = true;
      } else if (r.http->path.starts_with("/shop.Admin/")) {
        d = {false, "denied by TrafficPermission shop/no-admin (100% sure)", "shop/no-admin"};
      }
      return d;
    };
    ctx_ = std::make_unique<WorkerContext>(opts_, stats_, snaps_, certs_);
    worker_.Start(*ctx_);
  }
  void TearDown() override { worker_.Stop(); }

  // Starts the destination handler between a new client socketpair and a new pod socketpair.
  void Start(bool per_request, int* client, int* pod) {
    int c[2], p[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p), 0);
    InboundHttp::Params params = testing::ShopClientToPod(snaps_.Get(), 9090, per_request);
    ctx_->loop.Post([this, down = c[1], up = p[1], params]() mutable {
      H2Conn::StartDestination(*ctx_, down, up, /*up_connecting=*/false, std::move(params));
    });
    *client = c[0];
    *pod = p[0];
  }

  // Pumps both peers until |done| or 5 s.
  template <typename F>
  bool PumpUntil(Peer& a, Peer& b, F done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      a.Pump();
      b.Pump();
      if (done()) return true;
      pollfd pf[2] = {{a.fd, POLLIN, 0}, {b.fd, POLLIN, 0}};
      poll(pf, 2, 10);
    }
    return false;
  }

  ProxyOptions opts_;
  ProxyStats stats_;
  agent::SnapshotHolder snaps_;
  agent::InMemoryCertStore certs_;
  std::shared_ptr<Records> records_ = std::make_shared<Records>();
  std::unique_ptr<WorkerContext> ctx_;
  testing::WorkerThread worker_;  // declared last: stops before the context goes
};

TEST_F(H2DestinationTest, EachStreamIsDecidedAndTheAllowedOnesReachThePodWithTheirServerSpan) {
  int c, p;
  Start(/*per_request=*/true, &c, &p);
  Peer client(c, /*server=*/false), pod(p, /*server=*/true);
  const std::string given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  int32_t ok = client.Request("/shop.Echo/Who", {{"content-type", "application/grpc"}, {"traceparent", given}});
  int32_t denied = client.Request("/shop.Admin/Drop", {{"content-type", "application/grpc"}});
  int32_t plain = client.Request("/shop.Admin/page", {});
  int32_t dots = client.Request("/shop.Echo/../shop.Admin/Drop", {{"content-type", "application/grpc"}});
  ASSERT_TRUE(PumpUntil(client, pod, [&] {
    return client.streams[ok].closed && client.streams[denied].closed && client.streams[plain].closed &&
           client.streams[dots].closed;
  }));

  // Allowed: the pod answered, its traceparent is the SERVER span's (same trace, a new parent id).
  auto& o = client.streams[ok];
  ASSERT_NE(Peer::Find(o.trailers, "grpc-status"), nullptr);
  EXPECT_EQ(*Peer::Find(o.trailers, "grpc-status"), "0");
  ASSERT_TRUE(o.body.starts_with("/shop.Echo/Who 00-0af7651916cd43dd8448eb211c80319c-")) << o.body;
  std::string pod_parent = o.body.substr(o.body.size() - 19, 16);
  EXPECT_NE(pod_parent, "b7ad6b7169203331");

  // gRPC denied: trailers-only PERMISSION_DENIED, message percent-encoded; never at the pod.
  auto& d = client.streams[denied];
  EXPECT_EQ(*Peer::Find(d.headers, ":status"), "200");
  EXPECT_EQ(*Peer::Find(d.headers, "grpc-status"), "7");
  EXPECT_EQ(*Peer::Find(d.headers, "grpc-message"), "denied by TrafficPermission shop/no-admin (100%25 sure)");
  EXPECT_EQ(*Peer::Find(d.headers, "x-zeromesh-denied"), "shop/no-admin");
  EXPECT_TRUE(d.body.empty());
  // Not gRPC: 403 with the reason as the body. Dot segments resolve before the decision.
  auto& pl = client.streams[plain];
  EXPECT_EQ(*Peer::Find(pl.headers, ":status"), "403");
  EXPECT_EQ(*Peer::Find(pl.headers, "x-zeromesh-denied"), "shop/no-admin");
  EXPECT_EQ(pl.body, "denied by TrafficPermission shop/no-admin (100% sure)\n");
  EXPECT_EQ(*Peer::Find(client.streams[dots].headers, "grpc-status"), "7");
  EXPECT_EQ(pod.streams.size(), 1u) << "denied streams never reach the pod";
  EXPECT_EQ(stats_.denials.load(), 3u);

  // One record per stream, from the destination, the allowed one with the SERVER span the pod got as its parent.
  std::vector<RequestRecord> recs;
  for (int i = 0; i < 100 && (recs = records_->records()).size() < 4; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(recs.size(), 4u);
  int allowed = 0;
  for (const auto& r : recs) {
    EXPECT_EQ(r.reporter, Reporter::kDestination);
    EXPECT_EQ(r.destination_service, "shop/rpc");
    EXPECT_EQ(r.source.principal, "spiffe://cluster.local/ns/shop/sa/client");
    EXPECT_EQ(r.destination.workload, "rpc-0");
    if (r.policy.empty()) {
      ++allowed;
      EXPECT_EQ(r.grpc_status, "0");
      EXPECT_EQ(r.span.span_id, pod_parent);
      EXPECT_EQ(r.span.parent_id, "b7ad6b7169203331");
    } else {
      EXPECT_EQ(r.policy, "shop/no-admin");
    }
  }
  EXPECT_EQ(allowed, 1);

  // The pod says GOAWAY: so does the proxy to the client, which opens a new connection for its next calls.
  EXPECT_FALSE(client.goaway);
  nghttp2_submit_goaway(pod.h2, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, nullptr, 0);
  EXPECT_TRUE(PumpUntil(client, pod, [&] { return client.goaway; }));
}

// A denied stream never reaches the pod, yet its SERVER span is in the caller's trace: parented on the traceparent
// it came with, keeping that trace's sampled flag (both ways), or a new trace when it came with none.
TEST_F(H2DestinationTest, DeniedStreamsGetTheirServerSpanInTheCallersTrace) {
  int c, p;
  Start(/*per_request=*/true, &c, &p);
  Peer client(c, /*server=*/false), pod(p, /*server=*/true);
  const Headers grpc = {{"content-type", "application/grpc"}};
  Headers sampled = grpc, unsampled = grpc;
  sampled.emplace_back("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  unsampled.emplace_back("traceparent", "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00");
  int32_t a = client.Request("/shop.Admin/Drop", sampled);
  int32_t b = client.Request("/shop.Admin/Drop", unsampled);
  int32_t n = client.Request("/shop.Admin/Drop", grpc);
  ASSERT_TRUE(PumpUntil(
      client, pod, [&] { return client.streams[a].closed && client.streams[b].closed && client.streams[n].closed; }));
  EXPECT_EQ(pod.streams.size(), 0u);
  std::vector<RequestRecord> recs;
  for (int i = 0; i < 100 && (recs = records_->records()).size() < 3; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(recs.size(), 3u);
  std::map<std::string, RequestRecord> by_parent;
  for (const auto& r : recs) {
    EXPECT_EQ(r.policy, "shop/no-admin");
    EXPECT_EQ(r.grpc_status, "7");
    ASSERT_TRUE(r.span.active()) << "a denied stream has a span";
    EXPECT_EQ(r.span.span_id.size(), 16u);
    EXPECT_NE(r.wall_start, std::chrono::system_clock::time_point{});
    by_parent[r.span.parent_id] = r;
  }
  ASSERT_EQ(by_parent.count("b7ad6b7169203331"), 1u);
  EXPECT_EQ(by_parent["b7ad6b7169203331"].span.trace_id, "0af7651916cd43dd8448eb211c80319c");
  EXPECT_TRUE(by_parent["b7ad6b7169203331"].span.sampled());
  ASSERT_EQ(by_parent.count("c7ad6b7169203331"), 1u);
  EXPECT_EQ(by_parent["c7ad6b7169203331"].span.trace_id, "1af7651916cd43dd8448eb211c80319c");
  EXPECT_FALSE(by_parent["c7ad6b7169203331"].span.sampled()) << "the caller's decision wins";
  ASSERT_EQ(by_parent.count(""), 1u) << "no traceparent: a root span of a new trace";
  EXPECT_EQ(by_parent[""].span.trace_id.size(), 32u);
}

TEST_F(H2DestinationTest, NotHttp2FallsBackToTheByteRelayUnlessRequestsMustBeDecided) {
  int c, p;
  Start(/*per_request=*/false, &c, &p);
  const std::string hello = "GET / HTTP/1.1\r\n\r\nanything at all";
  ASSERT_EQ(send(c, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  std::string got;
  for (int i = 0; i < 500 && got.size() < hello.size(); ++i) {
    char buf[256];
    ssize_t n = recv(p, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n <= 0) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(got, hello);
  ASSERT_EQ(send(p, "back", 4, MSG_NOSIGNAL), 4);
  std::string back;
  for (int i = 0; i < 500 && back.size() < 4; ++i) {
    char buf[16];
    ssize_t n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) back.append(buf, static_cast<size_t>(n));
    if (n <= 0) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(back, "back");
  EXPECT_EQ(stats_.destination_protocol_fallbacks.load(), 1u);
  close(c);
  close(p);

  // With per-request decisions nothing unparsed reaches the pod: the connection closes.
  Start(/*per_request=*/true, &c, &p);
  ASSERT_EQ(send(c, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  char buf[64];
  ssize_t n = -1;
  for (int i = 0; i < 500; ++i) {
    n = recv(p, buf, sizeof(buf), MSG_DONTWAIT);
    if (n >= 0 || errno != EAGAIN) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(n, 0) << "the pod connection is closed without a byte";
  close(c);
  close(p);
}

// The source role: H2Conn routes each stream of a client connection to the two endpoints of a gRPC Service whose
// HTTPRoute rule retries once on 503. The opener hands the test the other end of every upstream it opens.
class H2SourceRetryTest : public H2DestinationTest {
 protected:
  static constexpr const char* kGood = "10.244.1.8";
  static constexpr const char* kBad = "10.244.1.7";

  void SetUp() override {
    H2DestinationTest::SetUp();
    agent::Service svc;
    svc.name = "rpc";
    svc.ns = "shop";
    svc.vips = {Ip("10.96.0.9")};
    svc.ports = {{90, 9090, agent::PortProtocol::kGrpc}};
    svc.endpoints = {{Ip(kBad), "", ""}, {Ip(kGood), "", ""}};
    agent::HttpRouteRule rule;
    rule.key = "shop/rpc#0";
    rule.retry.attempts = 1;
    rule.retry.codes = {503};
    rule.retry.backoff = 1ms;
    svc.http_routes.push_back({0, {rule}});
    snap_ = std::make_shared<agent::MeshSnapshot>("cluster.local", "node2", agent::MeshMode::kStrict,
                                                  std::vector<agent::Workload>{}, std::vector<agent::Service>{svc});
    ctx_->balancer = &balancer_;
  }

  // A client connection to the VIP; upstreams opened for it show up in opened_ (by endpoint IP).
  int Connect() {
    int c[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
    ctx_->loop.Post([this, down = c[1]] {
      H2Conn::Start(
          *ctx_, down, snap_, &snap_->services()[0], 90, net::SockAddr{Ip("10.244.2.5"), 40000},
          [this](traffic::Route r, std::string* why) {
            if (refuse_opens_) {
              *why = "connect refused (test)";
              return -1;
            }
            int p[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) != 0) return -1;
            std::lock_guard<std::mutex> l(mu_);
            opened_.emplace_back(r.addr.ip, p[0]);
            return p[1];
          },
          "test");
    });
    return c[0];
  }

  // Pumps the client and every pod (new ones become test servers: kBad answers UNAVAILABLE, or |bad_closes|: closes
  // its connection at the first request) until |done| or 5 s.
  template <typename F>
  bool PumpAll(Peer& client, bool bad_closes, F done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> l(mu_);
        for (auto [ip, fd] : opened_) {
          pods_.push_back(std::make_unique<Peer>(fd, /*server=*/true));
          pods_.back()->unavailable = ip == Ip(kBad);
          pod_ip_.push_back(ip);
        }
        opened_.clear();
      }
      client.Pump();
      for (size_t i = 0; i < pods_.size(); ++i) {
        if (pods_[i]->fd < 0) continue;
        pods_[i]->Pump();
        if (bad_closes && pod_ip_[i] == Ip(kBad) && !pods_[i]->streams.empty()) {
          close(pods_[i]->fd);  // a reset before any response byte
          pods_[i]->fd = -1;
        }
      }
      if (done()) return true;
      poll(nullptr, 0, 2);
    }
    return false;
  }

  size_t StreamsAt(const char* ip) {
    size_t n = 0;
    for (size_t i = 0; i < pods_.size(); ++i) n += pod_ip_[i] == Ip(ip) ? pods_[i]->streams.size() : 0;
    return n;
  }

  traffic::Balancer balancer_;
  std::atomic<bool> refuse_opens_{false};  // the opener fails: the source proxy answers 503 itself
  std::shared_ptr<agent::MeshSnapshot> snap_;
  std::mutex mu_;
  std::vector<std::pair<net::IpAddr, int>> opened_;
  std::vector<std::unique_ptr<Peer>> pods_;
  std::vector<net::IpAddr> pod_ip_;
};

TEST_F(H2SourceRetryTest, UnavailableAndResetTriesAreRetriedOnTheOtherEndpointWithTheBody) {
  for (bool bad_closes : {false, true}) {
    SCOPED_TRACE(bad_closes ? "the bad endpoint closes" : "the bad endpoint answers UNAVAILABLE");
    Peer client(Connect(), /*server=*/false);
    // One call at a time: the retry budget (3 retrying at once, or 20 %) never refuses.
    for (int i = 0; i < 8; ++i) {
      int32_t id =
          client.Request("/shop.Echo/Who", {{"content-type", "application/grpc"}}, "hello-" + std::to_string(i));
      ASSERT_TRUE(PumpAll(client, bad_closes, [&] { return client.streams[id].closed; }));
      auto& st = client.streams[id];
      ASSERT_NE(Peer::Find(st.trailers, "grpc-status"), nullptr) << "call " << i;
      EXPECT_EQ(*Peer::Find(st.trailers, "grpc-status"), "0");
      EXPECT_TRUE(st.body.ends_with(" body=hello-" + std::to_string(i))) << st.body;
    }
    const size_t failed = StreamsAt(kBad);
    EXPECT_GE(failed, 1u) << "the bad endpoint got its share of first tries";
    EXPECT_EQ(StreamsAt(kGood), 8u);
    std::vector<RequestRecord> recs;
    for (int i = 0; i < 100 && (recs = records_->records()).size() < 8; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_EQ(recs.size(), 8u);
    size_t retried = 0;
    for (const auto& r : recs) {
      EXPECT_EQ(r.reporter, Reporter::kSource);
      EXPECT_EQ(r.grpc_status, "0");
      EXPECT_EQ(r.destination.addr.ip, Ip(kGood));
      EXPECT_LE(r.attempts, 2u);
      retried += r.attempts - 1;
    }
    EXPECT_EQ(retried, failed);
    EXPECT_EQ(ctx_->http.retry_budget.active_retries(), 0u);
    records_->clear();
    pods_.clear();
    pod_ip_.clear();
  }
}

// The source proxy's own answer (no upstream could be opened: 503, gRPC UNAVAILABLE) gets its CLIENT span, child of
// the call's traceparent, though nothing went upstream.
TEST_F(H2SourceRetryTest, ALocalReplyGetsItsClientSpan) {
  refuse_opens_ = true;
  Peer client(Connect(), /*server=*/false);
  int32_t id =
      client.Request("/shop.Echo/Who", {{"content-type", "application/grpc"},
                                        {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  ASSERT_TRUE(PumpAll(client, false, [&] { return client.streams[id].closed; }));
  std::vector<RequestRecord> recs;
  for (int i = 0; i < 100 && (recs = records_->records()).empty(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(recs.size(), 1u);
  const RequestRecord& r = recs[0];
  EXPECT_EQ(r.reporter, Reporter::kSource);
  EXPECT_EQ(r.grpc_status, "14");  // UNAVAILABLE, 503's gRPC mapping
  EXPECT_EQ(r.error, "connect refused (test)");
  ASSERT_TRUE(r.span.active());
  EXPECT_EQ(r.span.trace_id, "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(r.span.parent_id, "b7ad6b7169203331");
  EXPECT_TRUE(r.span.sampled());
}

}  // namespace
}  // namespace zm::proxy
