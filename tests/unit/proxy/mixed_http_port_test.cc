// One pod port that two Services declare with different protocols (shop/rpc: gRPC, shop/web: HTTP/1.1), served by
// the handler the destination proxy picks for it (DestinationL7For, StartDestinationL7) on a real worker event loop:
// an h2c client and an HTTP/1.1 client both reach the pod and are both reported with reporter=destination under the
// first Service by namespace/name; with per-request decisions each request of either is decided and bytes that are
// neither are refused; without, those bytes fall back to the byte relay.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "agent/proxy/destination_l7.h"
#include "agent/state/cert_store.h"
#include "tests/unit/proxy/h2_peer.h"
#include "tests/unit/proxy/request_log.h"
#include "tests/unit/proxy/shop_mesh.h"
#include "tests/unit/proxy/worker_thread.h"

namespace zm::proxy {
namespace {

using namespace std::chrono_literals;
using Peer = testing::H2Peer;

// Reads |fd| (non-blocking) until |done| holds for what was read, it closes, or 5 s pass.
template <typename F>
std::string ReadUntil(int fd, F done, bool* closed = nullptr) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done(got) && std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      if (closed != nullptr) *closed = true;
      break;
    }
    pollfd pf{fd, POLLIN, 0};
    poll(&pf, 1, 10);
  }
  return got;
}

bool SendAll(int fd, const std::string& s) {
  return send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

class MixedHttpPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agent::Workload client = testing::ShopWorkload("client", "client", "10.244.2.5", "node2");
    agent::Workload pod = testing::ShopWorkload("both-0", "both", "10.244.1.7", "node1");
    // Listed in the order that is not namespace/name order.
    agent::Service web =
        testing::ShopService("web", "", {80, 7000, agent::PortProtocol::kHttp}, "10.244.1.7", "shop/both-0", "node1");
    agent::Service rpc =
        testing::ShopService("rpc", "", {90, 7000, agent::PortProtocol::kGrpc}, "10.244.1.7", "shop/both-0", "node1");
    snaps_.Set(std::make_shared<agent::MeshSnapshot>("cluster.local", "node1", agent::MeshMode::kStrict,
                                                     std::vector<agent::Workload>{client, pod},
                                                     std::vector<agent::Service>{web, rpc}));
    opts_.observer = records_;
    // With per_request_: every connection is decided per request, and /admin (HTTP/1.1) or /shop.Admin/ (gRPC) is
    // denied by shop/no-admin.
    opts_.authorize = [this](const AuthzRequest& r) {
      AuthzDecision d;
      if (r.http == nullptr) {
        d.per_request = per_request_;
      } else if (r.http->path.starts_with("/admin") || r.http->path.starts_with("/shop.Admin/")) {
        d = {false, "denied by TrafficPermission shop/no-admin", "shop/no-admin"};
      }
      return d;
    };
    ctx_ = std::make_unique<WorkerContext>(opts_, stats_, snaps_, certs_);
    worker_.Start(*ctx_);
  }
  void TearDown() override { worker_.Stop(); }

  // A connection to pod port 7000 through the handler the destination proxy picks for it: the client's end and the
  // pod's end.
  void Connect(int* client, int* pod) {
    int c[2], p[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p), 0);
    InboundHttp::Params params = testing::ShopClientToPod(snaps_.Get(), 7000, per_request_);
    DestinationL7 l7 = DestinationL7For(*params.snap, params.dst, per_request_);
    ASSERT_EQ(l7, DestinationL7::kHttp1OrHttp2);
    ctx_->loop.Post([this, l7, down = c[1], up = p[1], params]() mutable {
      StartDestinationL7(*ctx_, l7, down, up, /*up_connecting=*/false, std::move(params));
    });
    *client = c[0];
    *pod = p[0];
  }

  // One gRPC call on an h2c connection; returns the client's view of the stream once it closed.
  Peer::Stream Call(const std::string& path, size_t* pod_streams) {
    int c, p;
    Connect(&c, &p);
    Peer client(c, /*server=*/false), pod(p, /*server=*/true);
    int32_t id = client.Request(path, {{"content-type", "application/grpc"}});
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!client.streams[id].closed && std::chrono::steady_clock::now() < deadline) {
      client.Pump();
      pod.Pump();
      pollfd pf[2] = {{client.fd, POLLIN, 0}, {pod.fd, POLLIN, 0}};
      poll(pf, 2, 10);
    }
    EXPECT_TRUE(client.streams[id].closed) << path;
    *pod_streams = pod.streams.size();
    return client.streams[id];
  }

  // One HTTP/1.1 GET; |pod_got|: the request as the pod read it ("" when none came), answered 200 "ok". Returns the
  // client's answer once complete (or after 5 s).
  std::string Get(const std::string& path, std::string* pod_got) {
    int c, p;
    Connect(&c, &p);
    EXPECT_TRUE(SendAll(c, "GET " + path + " HTTP/1.1\r\nhost: web.shop\r\n\r\n"));
    pod_got->clear();
    std::string answer;
    bool answered = false;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      char buf[4096];
      ssize_t n = recv(p, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) pod_got->append(buf, static_cast<size_t>(n));
      if (!answered && pod_got->find("\r\n\r\n") != std::string::npos) {
        answered = true;
        EXPECT_TRUE(SendAll(p, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
      }
      n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) answer.append(buf, static_cast<size_t>(n));
      size_t head = answer.find("\r\n\r\n");
      // Complete: our "ok", or the proxy's own answer (its content-length counts the reason and a newline).
      if (head != std::string::npos && answer.size() > head + 4 &&
          (answer.ends_with("\r\n\r\nok") || answer.ends_with("\n"))) {
        break;
      }
      pollfd pf[2] = {{c, POLLIN, 0}, {p, POLLIN, 0}};
      poll(pf, 2, 10);
    }
    close(c);
    close(p);
    return answer;
  }

  std::vector<RequestRecord> Records(size_t n) {
    std::vector<RequestRecord> recs;
    for (int i = 0; i < 200 && (recs = records_->records()).size() < n; ++i) std::this_thread::sleep_for(10ms);
    return recs;
  }

  bool per_request_ = false;
  ProxyOptions opts_;
  ProxyStats stats_;
  agent::SnapshotHolder snaps_;
  agent::InMemoryCertStore certs_;
  std::shared_ptr<testing::RequestLog> records_ = std::make_shared<testing::RequestLog>();
  std::unique_ptr<WorkerContext> ctx_;
  testing::WorkerThread worker_;  // declared last: stops before the context goes
};

TEST_F(MixedHttpPortTest, OnePodPortTakesAnHttp1AndAnH2cClient) {
  size_t at_pod = 0;
  Peer::Stream call = Call("/shop.Echo/Who", &at_pod);
  ASSERT_NE(Peer::Find(call.trailers, "grpc-status"), nullptr);
  EXPECT_EQ(*Peer::Find(call.trailers, "grpc-status"), "0");
  EXPECT_TRUE(call.body.starts_with("/shop.Echo/Who ")) << call.body;
  EXPECT_EQ(at_pod, 1u);

  std::string pod_got;
  std::string answer = Get("/hello", &pod_got);
  EXPECT_TRUE(pod_got.starts_with("GET /hello HTTP/1.1\r\n")) << pod_got;
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer;
  EXPECT_TRUE(answer.ends_with("\r\n\r\nok")) << answer;
  EXPECT_EQ(stats_.destination_protocol_fallbacks.load(), 0u) << "both were HTTP";

  // Both reported by the destination, under the first Service by namespace/name (shop/rpc before shop/web).
  std::vector<RequestRecord> recs = Records(2);
  ASSERT_EQ(recs.size(), 2u);
  std::vector<std::string> methods;
  for (const auto& r : recs) {
    EXPECT_EQ(r.reporter, Reporter::kDestination);
    EXPECT_EQ(r.destination_service, "shop/rpc");
    EXPECT_EQ(r.destination.workload, "both-0");
    EXPECT_EQ(r.status, 200);
    methods.push_back(r.method);
  }
  std::sort(methods.begin(), methods.end());
  EXPECT_EQ(methods, (std::vector<std::string>{"GET", "POST"}));

  // Neither HTTP/1.1 nor HTTP/2 (TLS here): the byte relay, sniffed bytes first, as on a port of either protocol.
  int c, p;
  Connect(&c, &p);
  const std::string hello("\x16\x03\x01\x00\x05hello", 10);
  ASSERT_TRUE(SendAll(c, hello));
  EXPECT_EQ(ReadUntil(p, [&](const std::string& s) { return s.size() >= hello.size(); }), hello);
  ASSERT_TRUE(SendAll(p, "back"));
  EXPECT_EQ(ReadUntil(c, [](const std::string& s) { return s.size() >= 4; }), "back");
  EXPECT_EQ(stats_.destination_protocol_fallbacks.load(), 1u);
  close(c);
  close(p);
}

TEST_F(MixedHttpPortTest, PerRequestDecisionsCoverBothProtocolsAndRefuseTheRest) {
  per_request_ = true;
  size_t at_pod = 0;
  Peer::Stream denied = Call("/shop.Admin/Drop", &at_pod);
  ASSERT_NE(Peer::Find(denied.headers, "grpc-status"), nullptr);
  EXPECT_EQ(*Peer::Find(denied.headers, "grpc-status"), "7");  // PERMISSION_DENIED
  EXPECT_EQ(at_pod, 0u);
  Peer::Stream allowed = Call("/shop.Echo/Who", &at_pod);
  ASSERT_NE(Peer::Find(allowed.trailers, "grpc-status"), nullptr);
  EXPECT_EQ(*Peer::Find(allowed.trailers, "grpc-status"), "0");
  EXPECT_EQ(at_pod, 1u);

  std::string pod_got;
  std::string answer = Get("/admin/users", &pod_got);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 403 Forbidden\r\n")) << answer;
  EXPECT_NE(answer.find("x-zeromesh-denied: shop/no-admin"), std::string::npos) << answer;
  EXPECT_EQ(pod_got, "") << "a denied request never reaches the pod";
  answer = Get("/public", &pod_got);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer;
  EXPECT_TRUE(pod_got.starts_with("GET /public HTTP/1.1\r\n")) << pod_got;
  EXPECT_EQ(stats_.denials.load(), 2u);

  // Bytes that are neither cannot be decided: 400 and closed, nothing reaches the pod.
  int c, p;
  Connect(&c, &p);
  ASSERT_TRUE(SendAll(c, std::string("\x16\x03\x01\x00\x05hello", 10)));
  bool closed = false;
  answer = ReadUntil(
      c, [](const std::string&) { return false; }, &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400 Bad Request\r\n")) << answer;
  bool pod_closed = false;
  EXPECT_EQ(ReadUntil(
                p, [](const std::string&) { return false; }, &pod_closed),
            "");
  EXPECT_TRUE(pod_closed);
  EXPECT_EQ(stats_.destination_protocol_fallbacks.load(), 0u);
  close(c);
  close(p);
}

}  // namespace
}  // namespace zm::proxy
