// RequestMirror on HTTP/2 and gRPC ports, driven by a real worker event loop on socketpairs. H2Mirror alone: the copy
// (pseudo-headers, headers, body, trailers) on its own HTTP/2 session, GOAWAY and close after the answer, the timeout
// for a silent backend, the per-worker bound. H2Conn's source role: a GRPCRoute rule mirroring every call to a second
// Service sends each copy (":authority" with "-shadow", the primary's traceparent, the body) on its own upstream once
// the call ended, the client sees the primary's answers only and never waits for the mirror, a body over the replay
// bound is not copied, and the mirrored / dropped counters say so.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/proxy/h2_conn.h"
#include "agent/proxy/h2_mirror.h"
#include "agent/proxy/http_mirror.h"
#include "agent/proxy/socket_util.h"
#include "agent/state/cert_store.h"
#include "tests/unit/proxy/h2_peer.h"
#include "tests/unit/proxy/request_log.h"
#include "tests/unit/proxy/shop_mesh.h"
#include "tests/unit/proxy/worker_thread.h"

namespace zm::proxy {
namespace {

using namespace std::chrono_literals;
using Peer = testing::H2Peer;
using Headers = Peer::Headers;

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

class H2MirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_.tracing = true;
    opts_.observer = records_;
    ctx_ = std::make_unique<WorkerContext>(opts_, stats_, snaps_, certs_);
    ctx_->balancer = &balancer_;
    worker_.Start(*ctx_);
  }
  void TearDown() override { worker_.Stop(); }

  template <typename F>
  auto OnLoop(F f) {
    return worker_.Run(f);
  }
  uint32_t InFlight() {
    return OnLoop([this] { return HttpMirror::InFlight(*ctx_); });
  }
  bool StartMirror(int fd, H2Mirror::Request req, std::chrono::milliseconds timeout) {
    return OnLoop([&] { return H2Mirror::Start(*ctx_, fd, std::move(req), timeout); });
  }

  ProxyOptions opts_;
  ProxyStats stats_;
  agent::SnapshotHolder snaps_;
  agent::InMemoryCertStore certs_;
  traffic::Balancer balancer_;
  std::shared_ptr<testing::RequestLog> records_ = std::make_shared<testing::RequestLog>();
  std::unique_ptr<WorkerContext> ctx_;
  testing::WorkerThread worker_;  // declared last: stops before the context goes
};

H2Mirror::Request CopyOf(const std::string& body) {
  H2Mirror::Request req;
  req.method = "POST";
  req.scheme = "http";
  req.authority = "rpc.shop-shadow:90";
  req.path = "/shop.Echo/Who";
  req.headers = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  req.body = body;
  req.trailers = {{"x-end", "1"}};
  return req;
}

// Pumps |backend| until the mirror closed the connection (true) or 5 s passed.
bool PumpUntilClosed(Peer& backend) {
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
    if (!backend.Pump()) return true;
    pollfd pf{backend.fd, POLLIN, 0};
    poll(&pf, 1, 10);
  }
  return false;
}

TEST_F(H2MirrorTest, SendsTheCopyOnItsOwnSessionThenGoawayAndClosesAfterTheAnswer) {
  int p[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p), 0);
  const std::string body(100 * 1024, 'b');  // past the 64 KiB default stream window: flow control is honoured
  ASSERT_TRUE(StartMirror(p[1], CopyOf(body), 5s));
  Peer backend(p[0], /*server=*/true);
  ASSERT_TRUE(PumpUntilClosed(backend)) << "the mirror closes its session once answered";
  ASSERT_EQ(backend.streams.size(), 1u);
  const auto& s = backend.streams.begin()->second;
  EXPECT_EQ(*Peer::Find(s.headers, ":method"), "POST");
  EXPECT_EQ(*Peer::Find(s.headers, ":authority"), "rpc.shop-shadow:90");
  EXPECT_EQ(*Peer::Find(s.headers, ":path"), "/shop.Echo/Who");
  EXPECT_EQ(*Peer::Find(s.headers, "content-type"), "application/grpc");
  EXPECT_EQ(s.body, body);
  ASSERT_NE(Peer::Find(s.trailers, "x-end"), nullptr);
  EXPECT_TRUE(backend.goaway) << "GOAWAY after the answer";
  EXPECT_EQ(InFlight(), 0u);
}

TEST_F(H2MirrorTest, ASilentBackendIsLeftAtTheTimeout) {
  int p[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p), 0);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(StartMirror(p[1], CopyOf("x"), 150ms));
  EXPECT_EQ(InFlight(), 1u);
  // The backend reads the request and never answers: the copy ends at its timeout, not before.
  std::string got;
  ssize_t n = 0;
  for (auto deadline = start + 5s; std::chrono::steady_clock::now() < deadline;) {
    char buf[4096];
    n = recv(p[0], buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    std::this_thread::sleep_for(5ms);
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(n, 0) << "closed";
  EXPECT_TRUE(got.starts_with("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")) << "a prior-knowledge HTTP/2 session";
  EXPECT_GE(took, 140ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(InFlight(), 0u);
  close(p[0]);
}

TEST_F(H2MirrorTest, PastTheWorkersBoundTheCopyIsNotSent) {
  OnLoop([this] { return ctx_->http.mirrors_in_flight = HttpMirror::kMaxInFlight; });
  int p[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p), 0);
  EXPECT_FALSE(StartMirror(p[1], CopyOf("x"), 5s));
  char c;
  EXPECT_EQ(recv(p[0], &c, 1, MSG_DONTWAIT), 0) << "its stream is closed unused";
  EXPECT_EQ(InFlight(), HttpMirror::kMaxInFlight);
  OnLoop([this] { return ctx_->http.mirrors_in_flight = 0; });
  close(p[0]);
}

// The source role: gRPC Service rpc (endpoint kPrimary) with a GRPCRoute rule that mirrors every call to Service
// shadow (endpoint kShadow) and none to Service audit (0 %). The opener hands the test the other end of every upstream.
class H2ConnMirrorTest : public H2MirrorTest {
 protected:
  static constexpr const char* kPrimary = "10.244.1.8";
  static constexpr const char* kShadow = "10.244.1.9";
  static constexpr const char* kAudit = "10.244.1.10";

  void SetUp() override {
    H2MirrorTest::SetUp();
    auto service = [](const char* name, const char* vip, const char* ep) {
      return testing::ShopService(name, vip, {90, 9090, agent::PortProtocol::kGrpc}, ep);
    };
    agent::Service rpc = service("rpc", "10.96.0.9", kPrimary);
    agent::HttpRouteRule rule;
    rule.key = "shop/rpc#0";
    rule.mirrors = {{{"shop", "shadow", 90, 0}, 100}, {{"shop", "audit", 90, 0}, 0}};
    rpc.grpc_routes.push_back({0, {rule}});
    snap_ = std::make_shared<agent::MeshSnapshot>(
        "cluster.local", "node2", agent::MeshMode::kStrict, std::vector<agent::Workload>{},
        std::vector<agent::Service>{rpc, service("shadow", "10.96.0.10", kShadow),
                                    service("audit", "10.96.0.11", kAudit)});
  }

  int Connect() {
    int c[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
    ctx_->loop.Post([this, down = c[1]] {
      H2Conn::Start(
          *ctx_, down, snap_, &snap_->services()[0], 90, net::SockAddr{Ip("10.244.2.5"), 40000},
          [this](traffic::Route r, std::string*) {
            int p[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) != 0) return -1;
            std::lock_guard<std::mutex> l(mu_);
            (r.addr.ip == Ip(kPrimary) ? primary_fds_ : shadow_fds_).push_back(p[0]);
            if (r.addr.ip == Ip(kAudit)) ++audit_opens_;
            return p[1];
          },
          "test");
    });
    return c[0];
  }

  // Pumps the client, the primary endpoint and, with |mirrors|, the mirror backends, until |done| or 5 s.
  template <typename F>
  bool PumpUntil(Peer& client, bool mirrors, F done) {
    for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        for (int fd : primary_fds_) primaries_.push_back(std::make_unique<Peer>(fd, /*server=*/true));
        primary_fds_.clear();
        if (mirrors) {
          for (int fd : shadow_fds_) shadows_.push_back(std::make_unique<Peer>(fd, /*server=*/true));
          shadow_fds_.clear();
        }
      }
      client.Pump();
      for (auto& p : primaries_) p->Pump();
      for (auto& p : shadows_) p->Pump();
      if (done()) return true;
      poll(nullptr, 0, 2);
    }
    return false;
  }

  std::shared_ptr<agent::MeshSnapshot> snap_;
  std::mutex mu_;
  std::vector<int> primary_fds_, shadow_fds_;
  int audit_opens_ = 0;
  std::vector<std::unique_ptr<Peer>> primaries_, shadows_;
};

TEST_F(H2ConnMirrorTest, EachEndedCallIsCopiedToTheMirrorWhileTheClientGetsThePrimaryOnly) {
  Peer client(Connect(), /*server=*/false);
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  std::vector<int32_t> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(client.Request("/shop.Echo/Who", {{"content-type", "application/grpc"}, {"traceparent", tp}},
                                 "hello-" + std::to_string(i)));
  }
  // Over the 64 KiB replay bound: answered by the primary, its copy dropped.
  const std::string big(70 * 1024, 'z');
  ids.push_back(client.Request("/shop.Echo/Big", {{"content-type", "application/grpc"}}, big));
  // The mirror backends are not pumped yet: the client's calls never wait for them.
  ASSERT_TRUE(PumpUntil(client, /*mirrors=*/false, [&] {
    for (int32_t id : ids) {
      if (!client.streams[id].closed) return false;
    }
    return true;
  }));
  for (int i = 0; i < 3; ++i) {
    const auto& st = client.streams[ids[i]];
    EXPECT_EQ(*Peer::Find(st.trailers, "grpc-status"), "0");
    EXPECT_TRUE(st.body.starts_with("/shop.Echo/Who 00-0af7651916cd43dd8448eb211c80319c-")) << st.body;
    EXPECT_TRUE(st.body.ends_with(" body=hello-" + std::to_string(i))) << st.body;
  }
  EXPECT_TRUE(client.streams[ids[3]].body.ends_with(" body=" + big));

  // Now the mirror backend: one copy per small call, each on its own session that says GOAWAY after the answer.
  ASSERT_TRUE(PumpUntil(client, /*mirrors=*/true, [&] {
    size_t done = 0;
    for (auto& p : shadows_) done += p->goaway ? 1 : 0;
    return shadows_.size() == 3 && done == 3;
  }));
  std::map<std::string, std::string> primary_tp;  // body -> the traceparent the primary got
  for (auto& p : primaries_) {
    for (auto& [id, s] : p->streams) {
      if (const std::string* t = Peer::Find(s.headers, "traceparent")) primary_tp[s.body] = *t;
    }
  }
  std::vector<std::string> bodies;
  for (auto& p : shadows_) {
    ASSERT_EQ(p->streams.size(), 1u);
    const auto& s = p->streams.begin()->second;
    bodies.push_back(s.body);
    EXPECT_EQ(*Peer::Find(s.headers, ":authority"), "rpc.shop-shadow");
    EXPECT_EQ(*Peer::Find(s.headers, ":path"), "/shop.Echo/Who");
    EXPECT_EQ(*Peer::Find(s.headers, "content-type"), "application/grpc");
    ASSERT_NE(Peer::Find(s.headers, "traceparent"), nullptr);
    EXPECT_EQ(*Peer::Find(s.headers, "traceparent"), primary_tp[s.body]) << "the primary's CLIENT span, as sent";
    EXPECT_NE(*Peer::Find(s.headers, "traceparent"), tp);
  }
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"hello-0", "hello-1", "hello-2"}));
  EXPECT_EQ(stats_.http_mirrored.load(), 3u);
  EXPECT_EQ(stats_.http_mirror_dropped.load(), 1u) << "the big call's copy";
  {
    std::lock_guard<std::mutex> l(mu_);  // the opener runs on the worker thread
    EXPECT_EQ(audit_opens_, 0) << "a 0 % mirror takes nothing";
  }
  for (int i = 0; i < 200 && InFlight() != 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(InFlight(), 0u);
}

// A call the client resets before its end is never copied; its sampled copy is counted as dropped.
TEST_F(H2ConnMirrorTest, ACallResetBeforeItsEndIsNotCopied) {
  Peer client(Connect(), /*server=*/false);
  Headers h = {{":method", "POST"},
               {":scheme", "http"},
               {":authority", "rpc.shop"},
               {":path", "/shop.Echo/Who"},
               {"content-type", "application/grpc"}};
  std::vector<nghttp2_nv> nva;
  for (auto& [n, v] : h) nva.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), 0});
  nghttp2_data_provider never{};  // a body that never ends
  never.read_callback = [](nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*, nghttp2_data_source*,
                           void*) -> ssize_t { return NGHTTP2_ERR_DEFERRED; };
  int32_t id = nghttp2_submit_request(client.h2, nullptr, nva.data(), nva.size(), &never, nullptr);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(PumpUntil(client, true, [&] { return !primaries_.empty() && !primaries_[0]->streams.empty(); }));
  nghttp2_submit_rst_stream(client.h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  ASSERT_TRUE(PumpUntil(client, true, [&] { return stats_.http_mirror_dropped.load() == 1; }));
  EXPECT_EQ(stats_.http_mirrored.load(), 0u);
  EXPECT_TRUE(shadows_.empty());
}

}  // namespace
}  // namespace zm::proxy
