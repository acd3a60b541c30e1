// NodeProxy end to end on loopback: two proxies ("node1" client side, "node2" server side) where pods are 127.0.0.x
// addresses. A test hook plays the BPF redirect: connecting to <pod ip>:<listener port> means "<pod ip>:<echo port>".
// Http1MirrorTest drives one Http1Conn alone on a worker loop (RequestMirror sampling on the HTTP/1.1 path).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <cctype>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "agent/proxy/authority.h"
#include "agent/proxy/hbone_client.h"
#include "agent/proxy/hbone_server.h"
#include "agent/proxy/http1_conn.h"
#include "agent/proxy/node_proxy.h"
#include "agent/proxy/request_record.h"
#include "agent/proxy/socket_util.h"
#include "agent/state/cert_store.h"
#include "tests/unit/proxy/loopback.h"
#include "tests/unit/proxy/raw_hbone.h"
#include "tests/unit/proxy/request_log.h"
#include "tests/unit/proxy/shop_mesh.h"
#include "tests/unit/proxy/test_certs.h"
#include "tests/unit/proxy/worker_thread.h"

namespace zm::proxy {
namespace {

using agent::MeshMode;
using agent::Workload;
using testing::Ip;

constexpr char kTd[] = "cluster.local";

struct Node {
  agent::SnapshotHolder snaps;
  agent::InMemoryCertStore certs;
  std::unique_ptr<NodeProxy> proxy;
  std::mutex mu;
  std::map<net::IpAddr, uint16_t> redirect;  // pod ip -> real port for captured connections
  uint16_t captured_ports[2] = {0, 0};       // outbound, plaintext listener ports

  void Redirect(const char* ip, uint16_t port) {
    std::lock_guard<std::mutex> l(mu);
    redirect[Ip(ip)] = port;
  }
};

Workload W(const char* name, const char* sa, const char* ip, const char* node, bool enrolled = true,
           MeshMode mode = MeshMode::kStrict) {
  Workload w;
  w.name = name;
  w.ns = "default";
  w.service_account = sa;
  w.ips = {Ip(ip)};
  w.node = node;
  w.enrolled = enrolled;
  w.mode = mode;
  return w;
}

std::vector<Workload> Pods(const char* pod_b_sa = "sa-b") {
  // podE: a second pod of podB's identity on the same node (ztunnel's "one connection, one destination pod").
  return {W("podA", "sa-a", "127.0.0.11", "node1"), W("podD", "sa-d", "127.0.0.12", "node1"),
          W("podB", pod_b_sa, "127.0.0.22", "node2"),
          W("podC", "sa-c", "127.0.0.23", "node2", true, MeshMode::kPermissive),
          W("podE", pod_b_sa, "127.0.0.24", "node2")};
}

std::string Id(const std::string& td, const std::string& sa) {
  return "spiffe://" + td + "/ns/default/sa/" + sa;
}

void LoadCerts(Node& n, const testing::TestCa& ca, const std::string& td, std::vector<std::string> sas) {
  std::vector<agent::IdentityMaterial> ids;
  for (const auto& sa : sas) {
    agent::IdentityMaterial m;
    std::string err;
    EXPECT_TRUE(tls::ParseSpiffeId(Id(td, sa), &m.id, &err)) << err;
    m.creds = testing::MakeLeaf(ca, {Id(td, sa)});
    ids.push_back(std::move(m));
  }
  std::string err;
  ASSERT_TRUE(n.certs.Replace(td, testing::Roots(ca), std::move(ids), &err)) << err;
}

class ProxyTest : public ::testing::Test {
 protected:
  ProxyOptions BaseOptions(Node& n) {
    ProxyOptions o;
    o.workers = 2;
    o.outbound_port = o.hbone_port = o.plaintext_port = 0;
    o.transparent_listeners = false;
    o.source_bind = SourceBind::kPlain;
    o.connect_timeout = std::chrono::milliseconds(2000);
    o.unknown_source_hold = std::chrono::milliseconds(600);
    o.original_dst = [&n](int fd, net::SockAddr* dst) {
      if (!LocalAddr(fd, dst)) return false;
      std::lock_guard<std::mutex> l(n.mu);
      uint16_t port = dst->port;
      if (port == n.captured_ports[0] || port == n.captured_ports[1]) {
        auto it = n.redirect.find(dst->ip);
        if (it != n.redirect.end()) dst->port = it->second;
      }
      return true;
    };
    return o;
  }

  void StartNode(Node& n, ProxyOptions o) {
    n.proxy = std::make_unique<NodeProxy>(std::move(o), n.snaps, n.certs);
    std::string err;
    ASSERT_TRUE(n.proxy->Start(&err)) << err;
    std::lock_guard<std::mutex> l(n.mu);
    n.captured_ports[0] = n.proxy->outbound_port();
    n.captured_ports[1] = n.proxy->plaintext_port();
  }

  // node2 is configured by the arguments (to test refusals); node1 always uses the mesh CA and cluster.local.
  void StartMesh(const testing::TestCa* node2_ca = nullptr, std::string node2_td = kTd,
                 const char* node2_pod_b_sa = "sa-b", Authorizer node2_authz = nullptr) {
    node2_.snaps.Set(std::make_shared<agent::MeshSnapshot>(node2_td, "node2", MeshMode::kStrict, Pods(node2_pod_b_sa)));
    LoadCerts(node2_, node2_ca ? *node2_ca : ca_, node2_td, {node2_pod_b_sa, "sa-c"});
    ProxyOptions o2 = BaseOptions(node2_);
    o2.authorize = std::move(node2_authz);
    if (tweak_node2_) tweak_node2_(o2);
    StartNode(node2_, std::move(o2));

    node1_.snaps.Set(std::make_shared<agent::MeshSnapshot>(kTd, "node1", MeshMode::kStrict, Pods()));
    LoadCerts(node1_, ca_, kTd, {"sa-a", "sa-d"});
    ProxyOptions o1 = BaseOptions(node1_);
    o1.hbone_dial_port = node2_.proxy->hbone_port();
    if (tweak_node1_) tweak_node1_(o1);
    StartNode(node1_, std::move(o1));
  }

  // A connection from pod |src| to pod |dst| as captured by node1's outbound listener.
  int Outbound(const char* src, const char* dst, uint16_t real_port) {
    node1_.Redirect(dst, real_port);
    return testing::ConnectFrom(src, dst, node1_.proxy->outbound_port());
  }

  void TearDown() override {
    if (node1_.proxy) node1_.proxy->Stop();
    if (node2_.proxy) node2_.proxy->Stop();
  }

  std::function<void(ProxyOptions&)> tweak_node1_;  // applied last to node1's options
  std::function<void(ProxyOptions&)> tweak_node2_;
  testing::TestCa ca_ = testing::MakeCa("mesh root");
  Node node1_;
  Node node2_;
};

TEST_F(ProxyTest, EchoOverHboneIsByteExactWithHalfClose) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  std::string data = testing::RandomBytes(8 << 20, 1);
  std::string back = testing::Exchange(fd, data, /*half_close=*/true);
  close(fd);
  EXPECT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data);
  // The pod saw the true client address, and the traffic went through the tunnel.
  ASSERT_EQ(echo.peers().size(), 1u);
  EXPECT_EQ(echo.peers()[0], "127.0.0.11");
  EXPECT_EQ(node1_.proxy->stats().hbone_streams_opened.load(), 1u);
  EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), 1u);
  EXPECT_GE(node1_.proxy->stats().bytes_out.load(), data.size());
}

namespace {

// Reads |fd| to EOF in small pieces with pauses, so the proxy writing to it keeps finding it full.
std::string ReadSlowly(int fd) {
  std::string got;
  char buf[3000];
  ssize_t n;
  for (int reads = 1; (n = read(fd, buf, sizeof(buf))) > 0; ++reads) {
    got.append(buf, static_cast<size_t>(n));
    if (reads % 32 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  return got;
}

bool SendAll(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

// Slow readers at both ends, with small receive buffers: the agents' sends to the pods come back short or EAGAIN in
// the middle of the DATA payloads of one TLS read-ahead (sent together, HboneSession::SendGathered) and the rest waits
// in the stream's queue, while the writing pods fill whole multi-block reads (readv). Every byte arrives, in order.
TEST_F(ProxyTest, SlowReadersGetEveryByteInOrderBothWays) {
  StartMesh();
  uint16_t port = 0;
  int lfd = testing::Listen("127.0.0.22", &port);
  ASSERT_GE(lfd, 0);
  int small = 8192;
  setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));  // inherited by the accepted socket
  const std::string upload = testing::RandomBytes(8 << 20, 3);
  const std::string download = testing::RandomBytes(8 << 20, 4);
  std::string server_got;
  bool server_sent = false;
  std::thread server([&] {
    int c = accept(lfd, nullptr, nullptr);
    if (c < 0) return;
    server_got = ReadSlowly(c);  // the upload, to the client's FIN
    server_sent = SendAll(c, download);
    close(c);
  });
  node1_.Redirect("127.0.0.22", port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.11", &src.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)), 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(node1_.proxy->outbound_port());
  inet_pton(AF_INET, "127.0.0.22", &dst.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)), 0);
  EXPECT_TRUE(SendAll(fd, upload));
  shutdown(fd, SHUT_WR);
  std::string client_got = ReadSlowly(fd);
  close(fd);
  server.join();
  close(lfd);
  EXPECT_EQ(server_got.size(), upload.size());
  EXPECT_TRUE(server_got == upload);
  EXPECT_TRUE(server_sent);
  EXPECT_EQ(client_got.size(), download.size());
  EXPECT_TRUE(client_got == download);
  EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), 1u);
}

TEST_F(ProxyTest, HalfCloseBeforeReply) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "ping", 4, 0), 4);
  shutdown(fd, SHUT_WR);  // FIN travels as END_STREAM; the reply still comes back
  char buf[16];
  std::string got;
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0);  // clean EOF, not a reset
  EXPECT_EQ(got, "ping");
  close(fd);
}

TEST_F(ProxyTest, ManyConcurrentConnectionsSharePooledSessions) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  constexpr int kThreads = 25, kPerThread = 20;  // 500 connections open at once
  std::barrier sync(kThreads);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int> fds;
      for (int i = 0; i < kPerThread; ++i) fds.push_back(Outbound("127.0.0.11", "127.0.0.22", echo.port()));
      sync.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        if (fds[i] < 0) continue;
        std::string data = testing::RandomBytes(32 * 1024, static_cast<uint32_t>(t * 1000 + i));
        if (testing::Exchange(fds[i], data) == data) ++ok;
        close(fds[i]);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  // 100 streams per connection, a pool per worker: far fewer TLS sessions than connections.
  EXPECT_LE(node1_.proxy->stats().hbone_sessions_opened.load(), 20u);
  EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), static_cast<uint64_t>(kThreads * kPerThread));
}

TEST_F(ProxyTest, ServerFromAnotherCaIsRefused) {
  testing::TestCa other = testing::MakeCa("other root");
  StartMesh(&other);
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_GE(node1_.proxy->stats().tls_failures.load(), 1u);
}

TEST_F(ProxyTest, ServerInAnotherTrustDomainIsRefused) {
  StartMesh(nullptr, "other.domain");
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_GE(node1_.proxy->stats().tls_failures.load(), 1u);
  // The server refuses node1's cluster.local client certificate just as well.
  EXPECT_GE(node2_.proxy->stats().tls_failures.load() + node1_.proxy->stats().tls_failures.load(), 1u);
}

TEST_F(ProxyTest, ServerWithUnexpectedIdentityIsRefused) {
  StartMesh(nullptr, kTd, "sa-x");  // node2 presents sa-x for podB; node1 expects sa-b
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_GE(node1_.proxy->stats().tls_failures.load(), 1u);
}

TEST_F(ProxyTest, PolicyDenyClosesClient) {
  std::atomic<int> asked{0};
  StartMesh(nullptr, kTd, "sa-b", [&](const AuthzRequest& r) {
    ++asked;
    EXPECT_EQ(r.source->ToString(), Id(kTd, "sa-a"));
    EXPECT_EQ(r.source_ip, Ip("127.0.0.11"));
    EXPECT_EQ(r.destination->name, "podB");
    return AuthzDecision{false, "test says no"};
  });
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(asked.load(), 1);
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_EQ(node2_.proxy->stats().denials.load(), 1u);
}

TEST_F(ProxyTest, UpstreamRefusedClosesClientPromptly) {
  StartMesh();
  uint16_t dead_port;
  {
    testing::EchoServer gone("127.0.0.22");
    dead_port = gone.port();
  }
  auto start = std::chrono::steady_clock::now();
  int fd = Outbound("127.0.0.11", "127.0.0.22", dead_port);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(node2_.proxy->stats().upstream_failures.load(), 1u);
}

TEST_F(ProxyTest, PassthroughForDestinationsOutsideTheMesh) {
  StartMesh();
  testing::EchoServer echo("127.0.0.99");
  int fd = Outbound("127.0.0.11", "127.0.0.99", echo.port());
  ASSERT_GE(fd, 0);
  std::string data = testing::RandomBytes(1 << 20, 7);
  EXPECT_TRUE(testing::Exchange(fd, data) == data);
  close(fd);
  ASSERT_EQ(echo.peers().size(), 1u);
  EXPECT_EQ(echo.peers()[0], "127.0.0.11");
  EXPECT_EQ(node1_.proxy->stats().passthrough.load(), 1u);
  EXPECT_EQ(node1_.proxy->stats().hbone_streams_opened.load(), 0u);
}

TEST_F(ProxyTest, SameNodeDeliveredLocallyWithPolicy) {
  StartMesh();
  testing::EchoServer echo("127.0.0.12");
  int fd = Outbound("127.0.0.11", "127.0.0.12", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, "hello"), "hello");
  close(fd);
  EXPECT_EQ(node1_.proxy->stats().same_node.load(), 1u);
  EXPECT_EQ(node1_.proxy->stats().hbone_streams_opened.load(), 0u);
  ASSERT_EQ(echo.peers().size(), 1u);
  EXPECT_EQ(echo.peers()[0], "127.0.0.11");
}

TEST_F(ProxyTest, PlaintextRefusedForStrictRelayedForPermissive) {
  StartMesh();
  testing::EchoServer strict_pod("127.0.0.22");
  testing::EchoServer permissive_pod("127.0.0.23");
  node2_.Redirect("127.0.0.22", strict_pod.port());
  node2_.Redirect("127.0.0.23", permissive_pod.port());
  int fd = testing::ConnectFrom("127.0.0.99", "127.0.0.22", node2_.proxy->plaintext_port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(strict_pod.accepted(), 0);
  fd = testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, "plain"), "plain");
  close(fd);
  ASSERT_EQ(permissive_pod.peers().size(), 1u);
  EXPECT_EQ(permissive_pod.peers()[0], "127.0.0.99");
}

TEST_F(ProxyTest, UnknownSourceIsHeldUntilKnown) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.13", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "early", 5, 0), 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(echo.accepted(), 0);  // nothing left the node yet
  auto pods = Pods();
  pods.push_back(W("podE", "sa-a", "127.0.0.13", "node1"));
  node1_.snaps.Set(std::make_shared<agent::MeshSnapshot>(kTd, "node1", MeshMode::kStrict, pods));
  EXPECT_EQ(testing::Exchange(fd, ""), "early");  // half-close, then read the echo to its end
  close(fd);
  EXPECT_EQ(node1_.proxy->stats().held_unknown_source.load(), 1u);
}

// A restarted destination agent: the pinned pod map steers HBONE to it before its configuration arrives. The
// connection is held (the peer's TLS handshake waits), not refused, and served once the configuration is in.
TEST_F(ProxyTest, HboneReachingAnAgentWithoutConfigurationIsHeldUntilConfigured) {
  StartMesh();
  auto configured = node2_.snaps.Get();
  node2_.snaps.Set(nullptr);
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "early", 5, 0), 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_EQ(node2_.proxy->stats().held_unknown_source.load(), 1u);
  node2_.snaps.Set(configured);
  EXPECT_EQ(testing::Exchange(fd, ""), "early");  // half-close, then read the echo to its end
  close(fd);
  EXPECT_EQ(echo.accepted(), 1);
}

// The destination's agent restarts: its HBONE port refuses (here) or drops SYNs (on a node, fail closed) for a
// moment. The source dials again on a fresh socket within the connect deadline instead of failing the connection.
TEST_F(ProxyTest, HboneDialRetriesWhileThePeerAgentRestarts) {
  StartMesh();
  uint16_t port = node2_.proxy->hbone_port();
  node2_.proxy->Stop();
  node2_.proxy.reset();
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // refused, dialled again, refused again
  ProxyOptions o2 = BaseOptions(node2_);
  o2.hbone_port = port;
  StartNode(node2_, std::move(o2));
  EXPECT_EQ(testing::Exchange(fd, "after the restart"), "after the restart");
  close(fd);
  EXPECT_GE(node1_.proxy->stats().hbone_redials.load(), 2u);
}

TEST_F(ProxyTest, UnknownSourceFailsClosedInStrict) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.13", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(echo.accepted(), 0);
}

// A hand-made client with sa-a's certificate (podA's identity) talking to node2's HBONE listener directly.
class HboneServerTest : public ProxyTest {
 protected:
  std::unique_ptr<testing::RawHbone> Dial(const char* src, const char* dst, const char* sa = "sa-a") {
    tls::Credentials creds = testing::MakeLeaf(ca_, {Id(kTd, sa)});
    std::string err;
    auto c = testing::RawHbone::Dial(src, dst, node2_.proxy->hbone_port(), creds, testing::Roots(ca_), kTd, &err);
    EXPECT_TRUE(c) << err;
    return c;
  }
  int Connect(testing::RawHbone& c, const std::string& authority, std::vector<std::string> fwd) {
    std::string err;
    int st = c.Connect(authority, fwd, &err);
    EXPECT_NE(st, 0) << err;
    return st;
  }
};

// A client may only speak for its own pods, whatever form its forwarded header takes (acceptance: the IP:port form
// cannot bypass the spoofing check). podD (127.0.0.12) is sa-d's; the client is sa-a.
TEST_F(HboneServerTest, ForwardedSpoofingIsRefusedInEveryForm) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  std::string authority = "127.0.0.22:" + std::to_string(echo.port());
  auto c = Dial("127.0.0.1", "127.0.0.22");  // from the node's address, as before source binding
  ASSERT_TRUE(c);
  struct Case {
    std::vector<std::string> fwd;
    int want;
  } cases[] = {
      {{"for=127.0.0.11"}, 200},
      {{"for=\"127.0.0.11:41234\""}, 200},
      {{"for=\"127.0.0.11:41234\";proto=http, for=127.0.0.12"}, 200},  // first element: the original client
      {{"for=unknown"}, 200},                                          // no address: the TCP peer is the source
      {{}, 200},
      {{"for=127.0.0.12"}, 400},
      {{"for=\"127.0.0.12\""}, 400},
      {{"for=\"127.0.0.12:41234\""}, 400},
      {{"FOR=\"127.0.0.12:41234\""}, 400},
      {{"for=127.0.0.12:41234"}, 400},                    // unquoted (not RFC 7239, accepted, checked)
      {{"proto=http;for=\"127.0.0.\\12:1\""}, 400},       // quoted-pair escape
      {{"for=\"127.0.0.12:1\"", "for=127.0.0.11"}, 400},  // two header lines: the first element counts
      {{"for=\"127.0.0.12:\""}, 400},                     // malformed: refused, never ignored
      {{"for=127.0.0.11;for=127.0.0.12"}, 400},           // duplicate parameter
      {{"for=\"127.0.0.11:1\" junk"}, 400},
  };
  int want_ok = 0;
  for (const auto& tc : cases) {
    std::string what = tc.fwd.empty() ? "(none)" : tc.fwd[0] + (tc.fwd.size() > 1 ? " + " + tc.fwd[1] : "");
    EXPECT_EQ(Connect(*c, authority, tc.fwd), tc.want) << what;
    want_ok += tc.want == 200;
  }
  // The accepted streams reached the pod from podA's address (from the forwarded for=) or the TCP peer.
  for (int i = 0; i < 100 && echo.accepted() < want_ok; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto peers = echo.peers();
  ASSERT_EQ(peers.size(), static_cast<size_t>(want_ok));
  EXPECT_EQ(std::count(peers.begin(), peers.end(), "127.0.0.11"), 3);
  EXPECT_EQ(std::count(peers.begin(), peers.end(), "127.0.0.12"), 0);
}

// A forwarded address the verified identity does not own never becomes the source (nor what ipBlocks match): a node's
// address, an unused pod IP, an outside address, 0.0.0.0. The TCP peer stays the source. From a peer bound to its pod's
// address, only that node's pods of the identity may be claimed.
TEST_F(HboneServerTest, ForwardedAddressesTheIdentityDoesNotOwnNeverBecomeTheSource) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  std::string authority = "127.0.0.22:" + std::to_string(echo.port());
  auto from_node = Dial("127.0.0.1", "127.0.0.22");  // a peer that does not bind its pod's address
  ASSERT_TRUE(from_node);
  auto from_pod = Dial("127.0.0.11", "127.0.0.22");  // one that does (podA, sa-a, node1)
  ASSERT_TRUE(from_pod);
  struct Case {
    testing::RawHbone* conn;
    std::string fwd;
    const char* want_source;
  } cases[] = {
      {from_node.get(), "for=127.0.0.11", "127.0.0.11"},          // sa-a's own pod on another node: believed
      {from_node.get(), "for=127.0.0.2", "127.0.0.1"},            // another node's address
      {from_node.get(), "for=\"127.0.0.99:1234\"", "127.0.0.1"},  // a pod IP nobody uses
      {from_node.get(), "for=10.11.12.13", "127.0.0.1"},          // an address outside the cluster
      {from_node.get(), "for=0.0.0.0", "127.0.0.1"},
      {from_pod.get(), "for=127.0.0.99", "127.0.0.11"},  // the bound pod stays the source
      {from_pod.get(), "for=127.0.0.1", "127.0.0.11"},
  };
  std::vector<std::string> want;
  for (const auto& tc : cases) {
    EXPECT_EQ(Connect(*tc.conn, authority, {tc.fwd}), 200) << tc.fwd;
    want.push_back(tc.want_source);
  }
  for (int i = 0; i < 100 && echo.accepted() < static_cast<int>(want.size()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto peers = echo.peers();
  std::sort(peers.begin(), peers.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(peers, want);
  // Another identity's pod is an outright lie of an authenticated peer: refused, as before.
  EXPECT_EQ(Connect(*from_node, authority, {"for=127.0.0.24"}), 400);
}

// A connection bound to another identity's pod address is refused even without a forwarded header.
TEST_F(HboneServerTest, SourceAddressOfAnotherIdentityIsRefused) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  std::string authority = "127.0.0.22:" + std::to_string(echo.port());
  auto own = Dial("127.0.0.11", "127.0.0.22");
  ASSERT_TRUE(own);
  EXPECT_EQ(Connect(*own, authority, {}), 200);
  auto spoofed = Dial("127.0.0.12", "127.0.0.22");
  ASSERT_TRUE(spoofed);
  EXPECT_EQ(Connect(*spoofed, authority, {}), 400);
  EXPECT_EQ(Connect(*spoofed, authority, {"for=\"127.0.0.11:1\""}), 400);
}

// ztunnel's rule: the CONNECT's :authority IP is the address the connection was dialled to, even for another pod of
// the very identity the server presented.
TEST_F(HboneServerTest, AuthorityMustBeTheDialledAddress) {
  StartMesh();
  testing::EchoServer echo_b("127.0.0.22");
  testing::EchoServer echo_e("127.0.0.24");
  auto to_b = Dial("127.0.0.11", "127.0.0.22");
  ASSERT_TRUE(to_b);
  EXPECT_EQ(Connect(*to_b, "127.0.0.22:" + std::to_string(echo_b.port()), {}), 200);
  EXPECT_EQ(Connect(*to_b, "127.0.0.24:" + std::to_string(echo_e.port()), {}), 400);
  auto to_e = Dial("127.0.0.11", "127.0.0.24");
  ASSERT_TRUE(to_e);
  EXPECT_EQ(Connect(*to_e, "127.0.0.24:" + std::to_string(echo_e.port()), {}), 200);
}

// Two pods of one identity on one node, many connections to each through the pool: none refused, because each pool
// connection carries streams for the one address it was dialled to.
TEST_F(ProxyTest, TwoPodsOfOneIdentityOnOneNodeAreBothReachable) {
  StartMesh();
  testing::EchoServer echo_b("127.0.0.22");
  testing::EchoServer echo_e("127.0.0.24");
  constexpr int kThreads = 8, kPerThread = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::pair<int, uint32_t>> fds;
      for (int i = 0; i < kPerThread; ++i) {
        bool to_b = (t + i) % 2 == 0;
        int fd = to_b ? Outbound("127.0.0.11", "127.0.0.22", echo_b.port())
                      : Outbound("127.0.0.11", "127.0.0.24", echo_e.port());
        fds.emplace_back(fd, static_cast<uint32_t>(t * 1000 + i));
      }
      for (auto [fd, seed] : fds) {
        if (fd < 0) continue;
        std::string data = testing::RandomBytes(4096, seed);
        if (testing::Exchange(fd, data) == data) ++ok;
        close(fd);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(echo_b.accepted() + echo_e.accepted(), kThreads * kPerThread);
  EXPECT_EQ(node2_.proxy->stats().bad_requests.load(), 0u);
}

// Bulk streams of one identity pair opened one after another (iperf3 -P 8) used to land on the worker that woke first
// and share its one pooled connection, one thread carrying them all. The accept hands a connection to a sibling that
// carries at least 2 fewer HBONE sessions + streams: both workers open a pooled connection, each with its share.
TEST_F(ProxyTest, StreamsOpenedOneAfterAnotherAreSpreadOverTheWorkers) {
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  constexpr int kConns = 8;
  std::vector<int> fds;
  for (int i = 0; i < kConns; ++i) {
    fds.push_back(Outbound("127.0.0.11", "127.0.0.22", echo.port()));
    ASSERT_GE(fds.back(), 0);
    // An echo through the stream before the next connection: established, still open.
    std::string data = testing::RandomBytes(1024, static_cast<uint32_t>(i));
    ASSERT_EQ(send(fds.back(), data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
    std::string back(data.size(), '\0');
    ASSERT_EQ(recv(fds.back(), back.data(), back.size(), MSG_WAITALL), static_cast<ssize_t>(back.size()));
    ASSERT_EQ(back, data);
  }
  EXPECT_EQ(node1_.proxy->stats().hbone_sessions_opened.load(), 2u);  // one per worker: both carry streams
  EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), static_cast<uint64_t>(kConns));
  for (int fd : fds) {
    std::string data = testing::RandomBytes(256 * 1024, static_cast<uint32_t>(fd));
    EXPECT_TRUE(testing::Exchange(fd, data, /*half_close=*/true) == data);
    close(fd);
  }
}

// Per-pool limits: 2 streams per connection, 2 connections per pool (per worker): 8 slots for 12 connections open at
// once. The streams beyond the limits wait for a free slot instead of failing or opening more connections.
TEST_F(ProxyTest, PoolLimitsQueueStreamsBeyondThem) {
  tweak_node1_ = [](ProxyOptions& o) {
    o.max_streams_per_connection = 2;
    o.max_connections_per_pool = 2;
  };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  constexpr int kConns = 12;
  std::vector<int> fds;
  for (int i = 0; i < kConns; ++i) fds.push_back(Outbound("127.0.0.11", "127.0.0.22", echo.port()));
  // Served in opening order: a queued stream only needs earlier ones (which hold its slots) to finish first.
  int ok = 0;
  for (int i = 0; i < kConns; ++i) {
    ASSERT_GE(fds[i], 0);
    std::string data = testing::RandomBytes(64 * 1024, static_cast<uint32_t>(i));
    if (testing::Exchange(fds[i], data) == data) ++ok;
    close(fds[i]);
  }
  EXPECT_EQ(ok, kConns);
  EXPECT_LE(node1_.proxy->stats().hbone_sessions_opened.load(), 4u);  // 2 workers x 2 connections
  EXPECT_GT(node1_.proxy->stats().hbone_streams_queued.load(), 0u);
  EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), static_cast<uint64_t>(kConns));
}

TEST(HbonePoolKey, IsIdentitiesAndTheDialledAddress) {
  tls::SpiffeId a, b;
  std::string err;
  ASSERT_TRUE(tls::ParseSpiffeId(Id(kTd, "sa-a"), &a, &err)) << err;
  ASSERT_TRUE(tls::ParseSpiffeId(Id(kTd, "sa-b"), &b, &err)) << err;
  net::SockAddr dial = net::SockAddr{Ip("10.244.2.11"), 15008};
  EXPECT_EQ(HbonePool::Key(a, b, dial, Ip("10.244.1.11")),
            Id(kTd, "sa-a") + "|" + Id(kTd, "sa-b") + "|10.244.2.11:15008|10.244.1.11");
  EXPECT_EQ(HbonePool::Key(a, b, dial, net::IpAddr()), Id(kTd, "sa-a") + "|" + Id(kTd, "sa-b") + "|10.244.2.11:15008|");
  EXPECT_NE(HbonePool::Key(a, b, dial, net::IpAddr()),
            HbonePool::Key(a, b, net::SockAddr{Ip("10.244.2.12"), 15008}, net::IpAddr()));
  EXPECT_EQ(HbonePool::Key(a, b, net::SockAddr{Ip("fd00::2:b"), 15008}, Ip("fd00::1:b")),
            Id(kTd, "sa-a") + "|" + Id(kTd, "sa-b") + "|[fd00::2:b]:15008|fd00::1:b");
  EXPECT_NE(HbonePool::Key(a, b, dial, Ip("10.244.1.11")), HbonePool::Key(a, b, dial, Ip("10.244.1.12")));
}

// The destination ignores `forwarded` (as ztunnel does): the app still sees podA, because node1 binds the HBONE
// connection to podA's address, and each source pod gets its own pool connection.
TEST_F(ProxyTest, DestinationSeesThePodWithForwardedOff) {
  tweak_node2_ = [](ProxyOptions& o) { o.hbone_trust_forwarded = false; };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  for (const char* src : {"127.0.0.11", "127.0.0.12", "127.0.0.11"}) {
    int fd = Outbound(src, "127.0.0.22", echo.port());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(testing::Exchange(fd, "hello"), "hello");
    close(fd);
  }
  EXPECT_EQ(echo.peers(), (std::vector<std::string>{"127.0.0.11", "127.0.0.12", "127.0.0.11"}));
  EXPECT_GE(node1_.proxy->stats().hbone_sessions_opened.load(), 2u);  // one per source address (and worker)
}

// Control for the test above: without the source bind and without `forwarded`, the destination only knows the node.
TEST_F(ProxyTest, WithoutSourceBindTheDestinationSeesTheNode) {
  tweak_node1_ = [](ProxyOptions& o) { o.hbone_bind_source = false; };
  tweak_node2_ = [](ProxyOptions& o) { o.hbone_trust_forwarded = false; };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, "hello"), "hello");
  close(fd);
  ASSERT_EQ(echo.peers().size(), 1u);
  EXPECT_NE(echo.peers()[0], "127.0.0.11");
}

// ---------------------------------------------------------------- bounds against a hostile peer or pod (issue 15)

bool WaitFor(const std::function<bool()>& done, int timeout_ms = 10000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Nothing to read and no hangup: the proxy still holds the connection open.
bool StillOpen(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return poll(&p, 1, 0) == 0;
}

// A listener that completes TCP connections (the kernel's backlog) and never accepts: CONNECTs to it get their 200.
struct Backlog {
  explicit Backlog(const char* ip) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage a{};
    socklen_t len = net::SockAddr{Ip(ip), 0}.ToSockaddr(&a);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(listen(fd, 256), 0);
    port = LocalPort(fd);
  }
  ~Backlog() { close(fd); }
  int fd;
  uint16_t port;
};

// Connections from a source the agent does not know are held, at most max_held_connections per worker: the next one
// is refused at once (not after the hold), and the held ones are intact and served once their pod is known.
TEST_F(ProxyTest, HeldConnectionsBeyondTheCapAreRefused) {
  tweak_node1_ = [](ProxyOptions& o) {
    o.workers = 1;  // the cap is per worker
    o.max_held_connections = 3;
    o.unknown_source_hold = std::chrono::seconds(60);
  };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  const ProxyStats& st = node1_.proxy->stats();
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(Outbound("127.0.0.13", "127.0.0.22", echo.port()));
    ASSERT_GE(held.back(), 0);
  }
  ASSERT_TRUE(WaitFor([&] { return st.held_unknown_source.load() == 3; }));
  int extra = Outbound("127.0.0.13", "127.0.0.22", echo.port());
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(extra, 10000));  // long before the 60 s hold ends
  close(extra);
  EXPECT_TRUE(WaitFor([&] { return st.held_refused.load() == 1; }));
  EXPECT_EQ(st.held_unknown_source.load(), 3u);
  for (int fd : held) EXPECT_TRUE(StillOpen(fd));
  auto pods = Pods();
  pods.push_back(W("podF", "sa-a", "127.0.0.13", "node1"));
  node1_.snaps.Set(std::make_shared<agent::MeshSnapshot>(kTd, "node1", MeshMode::kStrict, pods));
  for (int fd : held) {
    EXPECT_EQ(testing::Exchange(fd, "held"), "held");
    close(fd);
  }
  EXPECT_EQ(echo.accepted(), 3);
}

// A TCP connection to the HBONE listener that never completes a TLS handshake is closed after handshake_timeout (not
// after connect_timeout, which used to be the only bound), whether it sends nothing or half a ClientHello.
TEST_F(HboneServerTest, HandshakeTimeoutClosesIdleConnections) {
  tweak_node2_ = [](ProxyOptions& o) {
    o.connect_timeout = std::chrono::seconds(60);
    o.handshake_timeout = std::chrono::milliseconds(300);
  };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  const ProxyStats& st = node2_.proxy->stats();
  auto start = std::chrono::steady_clock::now();
  int silent = testing::ConnectFrom("127.0.0.11", "127.0.0.22", node2_.proxy->hbone_port());
  int partial = testing::ConnectFrom("127.0.0.11", "127.0.0.22", node2_.proxy->hbone_port());
  ASSERT_GE(silent, 0);
  ASSERT_GE(partial, 0);
  ASSERT_EQ(send(partial, "\x16\x03\x01\x02\x00\x01", 6, MSG_NOSIGNAL), 6);  // a record header and one byte of it
  EXPECT_TRUE(testing::ClosedWithoutData(silent, 10000));
  EXPECT_TRUE(testing::ClosedWithoutData(partial, 10000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));  // the timeout, not a refusal
  close(silent);
  close(partial);
  EXPECT_TRUE(WaitFor([&] { return st.hbone_handshake_timeouts.load() == 2; }));
  auto ok = Dial("127.0.0.11", "127.0.0.22");  // the listener still serves a real client
  ASSERT_TRUE(ok);
  EXPECT_EQ(Connect(*ok, "127.0.0.22:" + std::to_string(echo.port()), {}), 200);
}

// A verified client that opens no stream is closed after header_timeout; one whose first CONNECT came in time keeps
// its connection beyond it (the timer covers the first request only).
TEST_F(HboneServerTest, HeaderTimeoutClosesAVerifiedClientThatSendsNoRequest) {
  tweak_node2_ = [](ProxyOptions& o) { o.header_timeout = std::chrono::milliseconds(300); };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  const std::string authority = "127.0.0.22:" + std::to_string(echo.port());
  const ProxyStats& st = node2_.proxy->stats();
  auto idle = Dial("127.0.0.11", "127.0.0.22");
  ASSERT_TRUE(idle);
  std::string err;
  ASSERT_TRUE(idle->SendPreface(&err)) << err;  // HTTP/2 is up: preface and SETTINGS, no HEADERS
  EXPECT_TRUE(idle->WaitClosed(10000));         // ping_interval (10 s) and idle_timeout (300 s) are not what closes it
  EXPECT_TRUE(WaitFor([&] { return st.hbone_header_timeouts.load() == 1; }));
  auto busy = Dial("127.0.0.11", "127.0.0.22");
  ASSERT_TRUE(busy);
  EXPECT_EQ(Connect(*busy, authority, {}), 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(Connect(*busy, authority, {}), 200);
  EXPECT_EQ(st.hbone_header_timeouts.load(), 1u);
}

// max_connections_per_peer counts HBONE connections by TCP source address over all workers: the extra connection is
// refused at once while another address is served, the peer's open connections keep working, and a slot comes back
// when one of them closes.
TEST_F(HboneServerTest, PerPeerCapRefusesTheExtraConnectionWhileAnotherPeerIsServed) {
  tweak_node2_ = [](ProxyOptions& o) { o.max_connections_per_peer = 2; };
  StartMesh();
  testing::EchoServer echo("127.0.0.22");
  const std::string authority = "127.0.0.22:" + std::to_string(echo.port());
  const ProxyStats& st = node2_.proxy->stats();
  auto a1 = Dial("127.0.0.11", "127.0.0.22");
  auto a2 = Dial("127.0.0.11", "127.0.0.22");
  ASSERT_TRUE(a1 && a2);
  EXPECT_EQ(Connect(*a1, authority, {}), 200);
  EXPECT_EQ(Connect(*a2, authority, {}), 200);
  int extra = testing::ConnectFrom("127.0.0.11", "127.0.0.22", node2_.proxy->hbone_port());
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(extra, 10000));
  close(extra);
  EXPECT_TRUE(WaitFor([&] { return st.hbone_peer_limit_refused.load() == 1; }));
  auto other = Dial("127.0.0.13", "127.0.0.22");  // another address, same identity
  ASSERT_TRUE(other);
  EXPECT_EQ(Connect(*other, authority, {}), 200);
  EXPECT_EQ(Connect(*a1, authority, {}), 200);
  a2.reset();
  tls::Credentials creds = testing::MakeLeaf(ca_, {Id(kTd, "sa-a")});
  std::unique_ptr<testing::RawHbone> again;
  EXPECT_TRUE(WaitFor([&] {
    std::string err;
    again = testing::RawHbone::Dial("127.0.0.11", "127.0.0.22", node2_.proxy->hbone_port(), creds, testing::Roots(ca_),
                                    kTd, &err);
    return again && again->Connect(authority, {}, &err) == 200;  // refused again until node2 saw a2 close
  }));
}

// The server advertises SETTINGS_MAX_CONCURRENT_STREAMS = max_streams_per_connection, and streams beyond it are
// refused with RST_STREAM(REFUSED_STREAM), never relayed, even from a client that sent them all before it could know
// the limit. (A client that knows the limit and exceeds it anyway gets nghttp2's GOAWAY PROTOCOL_ERROR.)
TEST_F(HboneServerTest, StreamsBeyondMaxConcurrentStreamsAreRefused) {
  tweak_node2_ = [](ProxyOptions& o) { o.max_streams_per_connection = 4; };
  StartMesh();
  Backlog upstream("127.0.0.22");
  auto c = Dial("127.0.0.11", "127.0.0.22");
  ASSERT_TRUE(c);
  std::vector<int32_t> ids;
  std::string err;
  ASSERT_TRUE(c->OpenStreams("127.0.0.22:" + std::to_string(upstream.port), 5, &ids, &err)) << err;
  EXPECT_EQ(c->peer_max_concurrent_streams(), 4u);
  int ok = 0, refused = 0;
  for (int32_t id : ids) {
    if (c->status(id) == 200 && !c->closed(id)) ++ok;
    if (c->status(id) == 0 && c->closed(id) && c->close_code(id) == NGHTTP2_REFUSED_STREAM) ++refused;
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(refused, 1);
  EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), 4u);
}

TEST(HboneParse, Authority) {
  net::SockAddr a{};
  EXPECT_TRUE(ParseAuthority("10.244.1.11:8080", &a));
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.ip, Ip("10.244.1.11"));
  EXPECT_TRUE(ParseAuthority("[fd00:10:244:1::b]:8080", &a));  // an IPv6 pod: bracketed, as HBONE sends it
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.ip, Ip("fd00:10:244:1::b"));
  EXPECT_EQ(a.ToString(), "[fd00:10:244:1::b]:8080");
  for (const char* bad :
       {"", "10.244.1.11", "10.244.1.11:", "10.244.1.11:0", "10.244.1.11:65536", "host:80", "10.244.1:80",
        "10.244.1.11:8o", "10.244.1.11:123456", "fd00::b:80", "[fd00::b]", "[fd00::b]:", "[fd00::b]:0", "[fd00::b]80",
        "[10.244.1.11]:80", "[fd00::b%eth0]:80", "[::ffff:10.244.1.11]:80", "[fd00::g]:80"}) {
    EXPECT_FALSE(ParseAuthority(bad, &a)) << bad;
  }
}

// ---------------------------------------------------------------- per-request policy at the destination (InboundHttp)

// A keep-alive HTTP/1.1 server for GETs: every response's body is the request's target. Counts connections/requests.
class TinyHttpServer {
 public:
  explicit TinyHttpServer(const char* ip) {
    fd_ = testing::Listen(ip, &port_, 16);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        ++accepted_;
        std::lock_guard<std::mutex> l(mu_);
        fds_.push_back(c);
        conns_.emplace_back([this, c] { Serve(c); });
      }
    });
  }
  ~TinyHttpServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int c : fds_) shutdown(c, SHUT_RDWR);  // a connection the proxy still holds must not block the join
    for (auto& t : conns_) t.join();
    for (int c : fds_) close(c);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void Serve(int c) {
    std::string in;
    char buf[4096];
    while (true) {
      size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        continue;
      }
      std::string head = in.substr(0, end);
      in.erase(0, end + 4);
      size_t sp = head.find(' ');
      std::string target = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
      ++requests_;
      std::string resp = "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(target.size()) + "\r\n\r\n" + target;
      if (write(c, resp.data(), resp.size()) < 0) break;
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0}, requests_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::thread thread_;
  std::vector<std::thread> conns_;
};

// Sends one GET and reads one response (content-length framed); "" when the connection ended first.
std::string Get(int fd, const std::string& path, const std::string& extra_headers = "") {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: pod\r\n" + extra_headers + "\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return "";
  std::string in;
  char buf[4096];
  while (true) {
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t cl = in.find("content-length: ");
      size_t len = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
      if (in.size() >= end + 4 + len) return in.substr(0, end + 4 + len);
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return "";
    in.append(buf, static_cast<size_t>(n));
  }
}

// Allows the connection per request; a request for /private* is denied by "test/no-private".
AuthzDecision PrivateDenied(const AuthzRequest& r) {
  AuthzDecision d;
  if (r.http == nullptr) {
    d.per_request = true;
    return d;
  }
  if (r.http->path.starts_with("/private"))
    return {false, "denied by TrafficPermission test/no-private", "test/no-private"};
  return d;
}

void ExpectPerRequestDecisions(int fd) {
  std::string ok = Get(fd, "/public");
  EXPECT_EQ(ok.substr(0, 15), "HTTP/1.1 200 OK") << ok;
  EXPECT_TRUE(ok.ends_with("\r\n\r\n/public")) << ok;
  std::string denied = Get(fd, "/private/x");
  EXPECT_EQ(denied.substr(0, 22), "HTTP/1.1 403 Forbidden") << denied;
  EXPECT_NE(denied.find("x-zeromesh-denied: test/no-private\r\n"), std::string::npos) << denied;
  EXPECT_TRUE(denied.ends_with("denied by TrafficPermission test/no-private\n")) << denied;
  // Dot segments are resolved before the decision, and the pod gets the normalized path.
  EXPECT_EQ(Get(fd, "/public/../private").substr(0, 12), "HTTP/1.1 403");
  std::string again = Get(fd, "/public/./again");
  EXPECT_TRUE(again.ends_with("\r\n\r\n/public/again")) << again;  // same connection: keep-alive survived the 403s
}

TEST_F(ProxyTest, HttpRulesAreDecidedPerRequestAtTheHboneDestination) {
  StartMesh(nullptr, kTd, "sa-b", PrivateDenied);
  TinyHttpServer pod("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", pod.port());
  ASSERT_GE(fd, 0);
  ExpectPerRequestDecisions(fd);
  close(fd);
  EXPECT_EQ(pod.accepted(), 1);
  EXPECT_EQ(pod.requests(), 2);  // the denied requests never reached the pod
  EXPECT_EQ(node2_.proxy->stats().denials.load(), 2u);
}

TEST_F(ProxyTest, HttpRulesAreDecidedPerRequestOnTheSameNode) {
  tweak_node1_ = [](ProxyOptions& o) { o.authorize = PrivateDenied; };
  StartMesh();
  TinyHttpServer pod("127.0.0.12");
  int fd = Outbound("127.0.0.11", "127.0.0.12", pod.port());
  ASSERT_GE(fd, 0);
  ExpectPerRequestDecisions(fd);
  close(fd);
  EXPECT_EQ(pod.requests(), 2);
  EXPECT_EQ(node1_.proxy->stats().same_node.load(), 1u);
  EXPECT_EQ(node1_.proxy->stats().denials.load(), 2u);
}

TEST_F(ProxyTest, HttpRulesAreDecidedPerRequestForPermissivePlaintext) {
  std::atomic<bool> saw_identity{false};
  StartMesh(nullptr, kTd, "sa-b", [&](const AuthzRequest& r) {
    if (r.source != nullptr) saw_identity = true;  // a plaintext client has none, per request too
    return PrivateDenied(r);
  });
  TinyHttpServer pod("127.0.0.23");
  node2_.Redirect("127.0.0.23", pod.port());
  int fd = testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port());
  ASSERT_GE(fd, 0);
  ExpectPerRequestDecisions(fd);
  close(fd);
  EXPECT_EQ(pod.requests(), 2);
  EXPECT_FALSE(saw_identity.load());
}

TEST_F(ProxyTest, PortsWithoutHttpRulesKeepTheByteRelay) {
  // The same authorizer minus per_request: bytes pass untouched, even ones that are not HTTP.
  StartMesh(nullptr, kTd, "sa-b", [](const AuthzRequest&) { return AuthzDecision{}; });
  testing::EchoServer echo("127.0.0.22");
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, "GET /private HTTP/1.1\r\n\r\nnot http at all"),
            "GET /private HTTP/1.1\r\n\r\nnot http at all");
  close(fd);
  EXPECT_EQ(node2_.proxy->stats().denials.load(), 0u);
}

// ---------------------------------------------------- HTTP/1.1 ports at the destination: golden metrics, sniffing

using testing::RequestLog;

// Says |banner| as soon as a client connects (a server-speaks-first protocol: SMTP, MySQL), then echoes until EOF.
// One connection.
class BannerServer {
 public:
  BannerServer(const char* ip, std::string banner) : banner_(std::move(banner)) {
    fd_ = testing::Listen(ip, &port_, 4);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      conn_ = c;
      char buf[4096];
      if (write(c, banner_.data(), banner_.size()) == static_cast<ssize_t>(banner_.size())) {
        ssize_t n;
        while ((n = read(c, buf, sizeof(buf))) > 0) {
          if (write(c, buf, static_cast<size_t>(n)) != n) break;
        }
      }
      shutdown(c, SHUT_WR);
      while (read(c, buf, sizeof(buf)) > 0) {
      }
    });
  }
  ~BannerServer() {
    shutdown(fd_, SHUT_RDWR);
    if (conn_ >= 0) shutdown(conn_, SHUT_RDWR);
    thread_.join();
    if (conn_ >= 0) close(conn_);
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::string banner_;
  int fd_ = -1;
  std::atomic<int> conn_{-1};
  uint16_t port_ = 0;
  std::thread thread_;
};

// Reads exactly |n| bytes (the socket has a receive timeout); fewer when the connection ended first.
std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    ssize_t r = read(fd, buf, std::min(sizeof(buf), n - out.size()));
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

class DestinationHttpTest : public ProxyTest {
 protected:
  // Both nodes learn a Service "default/web" whose pod ports |ports| are HTTP/1.1 on podB, podC (node2) and podD
  // (node1); node2 decides connections with |node2_authz|. Only node2 traces, and only with trace_node2_.
  void StartWithHttpPorts(const std::vector<uint16_t>& ports, Authorizer node2_authz = nullptr) {
    tweak_node1_ = [this](ProxyOptions& o) { o.observer = log1_; };
    tweak_node2_ = [this](ProxyOptions& o) {
      o.observer = log2_;
      o.tracing = trace_node2_;
    };
    StartMesh(nullptr, kTd, "sa-b", std::move(node2_authz));
    agent::Service web;
    web.name = "web";
    web.ns = "default";
    for (uint16_t p : ports) {
      web.ports.push_back({static_cast<uint16_t>(web.ports.size() + 80), p, agent::PortProtocol::kHttp});
    }
    web.endpoints.push_back({Ip("127.0.0.22"), "default/podB", "node2"});
    web.endpoints.push_back({Ip("127.0.0.23"), "default/podC", "node2"});
    web.endpoints.push_back({Ip("127.0.0.12"), "default/podD", "node1"});
    const std::vector<agent::Service> svcs{web};
    node1_.snaps.Set(std::make_shared<agent::MeshSnapshot>(kTd, "node1", MeshMode::kStrict, Pods(), svcs));
    node2_.snaps.Set(std::make_shared<agent::MeshSnapshot>(kTd, "node2", MeshMode::kStrict, Pods(), svcs));
  }
  uint64_t Fallbacks(Node& n) { return n.proxy->stats().destination_protocol_fallbacks.load(); }

  std::shared_ptr<RequestLog> log1_ = std::make_shared<RequestLog>();
  std::shared_ptr<RequestLog> log2_ = std::make_shared<RequestLog>();
  bool trace_node2_ = false;
};

// A request denied at the destination (403) never reaches the pod, yet its SERVER span is in the caller's trace, as
// an allowed one's is; the connection goes on.
TEST_F(DestinationHttpTest, ADeniedRequestGetsItsServerSpan) {
  TinyHttpServer pod("127.0.0.22");
  trace_node2_ = true;
  StartWithHttpPorts({pod.port()}, PrivateDenied);
  int fd = Outbound("127.0.0.11", "127.0.0.22", pod.port());
  ASSERT_GE(fd, 0);
  const std::string tp = "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n";
  EXPECT_EQ(Get(fd, "/private/x", tp).substr(0, 12), "HTTP/1.1 403");
  EXPECT_EQ(Get(fd, "/public", tp).substr(0, 12), "HTTP/1.1 200");
  close(fd);
  EXPECT_EQ(pod.requests(), 1);
  std::vector<proxy::RequestRecord> recs;
  for (int i = 0; i < 200 && (recs = log2_->records()).size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) {
    SCOPED_TRACE(r.path);
    ASSERT_TRUE(r.span.active());
    EXPECT_EQ(r.span.trace_id, "0af7651916cd43dd8448eb211c80319c");
    EXPECT_EQ(r.span.parent_id, "b7ad6b7169203331");
    EXPECT_TRUE(r.span.sampled());
  }
  EXPECT_EQ(recs[0].status, 403);
  EXPECT_EQ(recs[0].policy, "test/no-private");
  EXPECT_NE(recs[0].span.span_id, recs[1].span.span_id);
}

TEST_F(DestinationHttpTest, EveryRequestToAnHttpPortIsReportedByTheDestination) {
  TinyHttpServer pod("127.0.0.22");
  StartWithHttpPorts({pod.port()});  // no TrafficPermission http rules, no tracing
  int fd = Outbound("127.0.0.11", "127.0.0.22", pod.port());
  ASSERT_GE(fd, 0);
  // Idle first: sniffing has no timer, a keep-alive client may wait before its first request.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(Get(fd, "/a").ends_with("\r\n\r\n/a"));
  EXPECT_TRUE(Get(fd, "/b").ends_with("\r\n\r\n/b"));
  close(fd);
  EXPECT_EQ(pod.accepted(), 1);
  EXPECT_EQ(pod.requests(), 2);
  auto recs = log2_->records();
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.reporter, Reporter::kDestination);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.destination_service, "default/web");
    EXPECT_EQ(r.source.workload, "podA");
  }
  EXPECT_EQ(recs[1].path, "/b");
  EXPECT_EQ(Fallbacks(node2_), 0u);
}

TEST_F(DestinationHttpTest, BytesThatAreNotHttpFallBackToTheByteRelay) {
  testing::EchoServer echo("127.0.0.22");
  testing::EchoServer same_node("127.0.0.12");
  testing::EchoServer plaintext("127.0.0.23");
  StartWithHttpPorts({echo.port(), same_node.port(), plaintext.port()});
  const std::string line = "hello\r\nnot http at all\r\n";
  const std::string binary = testing::RandomBytes(200000, 7);
  const std::string h2_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0", 33);
  const std::string partial_head = "GET /x HTTP/1.1\r\nHost: pod";  // then half-close: no request ever completes
  for (const std::string& payload : {line, binary, h2_preface, partial_head}) {
    int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(testing::Exchange(fd, payload), payload);  // every byte, in order, both ways
    close(fd);
  }
  EXPECT_EQ(Fallbacks(node2_), 4u);
  int fd = Outbound("127.0.0.11", "127.0.0.12", same_node.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, line), line);
  close(fd);
  EXPECT_EQ(Fallbacks(node1_), 1u);
  node2_.Redirect("127.0.0.23", plaintext.port());
  fd = testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, binary), binary);
  close(fd);
  EXPECT_EQ(Fallbacks(node2_), 5u);
  EXPECT_TRUE(log1_->records().empty());  // no request was made up
  EXPECT_TRUE(log2_->records().empty());
}

TEST_F(DestinationHttpTest, APodThatSpeaksFirstFallsBackToTheByteRelay) {
  BannerServer pod("127.0.0.22", "220 ready\r\n");
  BannerServer same_node("127.0.0.12", "220 ready\r\n");
  StartWithHttpPorts({pod.port(), same_node.port()});
  int fd = Outbound("127.0.0.11", "127.0.0.22", pod.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadN(fd, 11), "220 ready\r\n");  // before the client sent anything
  EXPECT_EQ(testing::Exchange(fd, "QUIT\r\n"), "QUIT\r\n");
  close(fd);
  EXPECT_EQ(Fallbacks(node2_), 1u);
  fd = Outbound("127.0.0.11", "127.0.0.12", same_node.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadN(fd, 11), "220 ready\r\n");
  EXPECT_EQ(testing::Exchange(fd, "QUIT\r\n"), "QUIT\r\n");
  close(fd);
  EXPECT_EQ(Fallbacks(node1_), 1u);
}

// Per-request policy is fail-closed: bytes that are not HTTP never reach the pod past it.
TEST_F(DestinationHttpTest, PerRequestPolicyNeverFallsBack) {
  testing::EchoServer echo("127.0.0.22");
  BannerServer banner("127.0.0.22", "220 ready\r\n");
  StartWithHttpPorts({echo.port(), banner.port()}, PrivateDenied);
  int fd = Outbound("127.0.0.11", "127.0.0.22", echo.port());
  ASSERT_GE(fd, 0);
  std::string got = testing::Exchange(fd, "hello\r\nnot http at all\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 Bad Request\r\n")) << got;
  EXPECT_EQ(got.find("hello"), std::string::npos) << got;
  close(fd);
  fd = Outbound("127.0.0.11", "127.0.0.22", banner.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));  // the pod spoke out of turn: reset, its bytes dropped
  close(fd);
  EXPECT_EQ(Fallbacks(node2_), 0u);
}

// Sniffing ends with the first request head: garbage afterwards is a broken HTTP connection, as before.
TEST_F(DestinationHttpTest, GarbageAfterARequestIsABadRequest) {
  TinyHttpServer pod("127.0.0.22");
  StartWithHttpPorts({pod.port()});
  int fd = Outbound("127.0.0.11", "127.0.0.22", pod.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(Get(fd, "/a").ends_with("\r\n\r\n/a"));
  std::string got = testing::Exchange(fd, "hello\r\nnot http at all\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 Bad Request\r\n")) << got;
  close(fd);
  EXPECT_EQ(pod.requests(), 1);
  EXPECT_EQ(Fallbacks(node2_), 0u);
}

constexpr char kSwitching[] = "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n";

// One connection of a byte protocol with half-closes. |pod_first|: says |banner|, half-closes, then reads the client
// to its end. Otherwise reads the client to its end first, then answers "got <n>" and half-closes. received() waits for
// the connection to end and returns what the client sent. |upgrade|: first reads a request head and answers 101.
class HalfCloseServer {
 public:
  HalfCloseServer(const char* ip, bool pod_first, std::string banner = {}, bool upgrade = false)
      : pod_first_(pod_first), banner_(std::move(banner)), upgrade_(upgrade) {
    fd_ = testing::Listen(ip, &port_, 4);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      conn_ = c;
      std::string head;
      char ch;
      while (upgrade_ && !head.ends_with("\r\n\r\n") && read(c, &ch, 1) == 1) head += ch;
      if (upgrade_ && write(c, kSwitching, strlen(kSwitching)) != static_cast<ssize_t>(strlen(kSwitching))) return;
      if (pod_first_) {
        if (!banner_.empty() && write(c, banner_.data(), banner_.size()) != static_cast<ssize_t>(banner_.size()))
          return;
        shutdown(c, SHUT_WR);
      }
      char buf[65536];
      ssize_t n;
      while ((n = read(c, buf, sizeof(buf))) > 0) received_.append(buf, static_cast<size_t>(n));
      clean_eof_ = n == 0;
      if (!pod_first_) {
        std::string reply = "got " + std::to_string(received_.size());
        if (write(c, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) return;
        shutdown(c, SHUT_WR);
      }
    });
  }
  ~HalfCloseServer() {
    shutdown(fd_, SHUT_RDWR);
    if (conn_ >= 0) shutdown(conn_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (conn_ >= 0) close(conn_);
    close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }
  bool clean_eof() {
    if (thread_.joinable()) thread_.join();
    return clean_eof_;
  }

 private:
  bool pod_first_;
  std::string banner_;
  bool upgrade_;
  int fd_ = -1;
  std::atomic<int> conn_{-1};
  uint16_t port_ = 0;
  std::thread thread_;
  std::string received_;
  bool clean_eof_ = false;
};

// Reads to the end; |clean|: the end was a FIN (read returned 0), not a reset or the receive timeout.
std::string ReadAll(int fd, bool* clean) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  *clean = n == 0;
  return out;
}

// Each pod below is a HalfCloseServer on an HTTP/1.1-declared port; its first bytes are not HTTP, so the connection
// falls back to the byte stream, which must keep TCP's half-closes both ways.
class ByteStreamHalfCloseTest : public DestinationHttpTest {
 protected:
  // The pod half-closes first (with or without a banner); the client reads the FIN, then still sends, then ends.
  // |prelude|: sent first (an Upgrade request).
  void ExpectPodFirst(int fd, HalfCloseServer& pod, const std::string& banner, const std::string& prelude = {}) {
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, prelude.data(), prelude.size(), MSG_NOSIGNAL), static_cast<ssize_t>(prelude.size()));
    bool clean = false;
    EXPECT_EQ(ReadAll(fd, &clean), banner);
    EXPECT_TRUE(clean) << "the pod's FIN did not reach the client as a FIN";
    const std::string data = testing::RandomBytes(300000, 3);  // more than a socket buffer: backpressure after the FIN
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "the client could not send after the pod's FIN: " << std::strerror(errno);
      off += static_cast<size_t>(n);
    }
    shutdown(fd, SHUT_WR);
    EXPECT_TRUE(pod.received() == data) << pod.received().size() << " of " << data.size() << " bytes";
    EXPECT_TRUE(pod.clean_eof());
    EXPECT_EQ(ReadAll(fd, &clean), "");
    EXPECT_TRUE(clean);
    close(fd);
  }
  // The client half-closes first; the pod reads it to the end and only then answers.
  void ExpectClientFirst(int fd, HalfCloseServer& pod) {
    ASSERT_GE(fd, 0);
    const std::string data = "\x16\x03\x01 not http, then a FIN" + testing::RandomBytes(100000, 4);
    ASSERT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
    shutdown(fd, SHUT_WR);
    bool clean = false;
    EXPECT_EQ(ReadAll(fd, &clean), "got " + std::to_string(data.size()));
    EXPECT_TRUE(clean);
    EXPECT_TRUE(pod.received() == data);
    EXPECT_TRUE(pod.clean_eof());
    close(fd);
  }
};

TEST_F(ByteStreamHalfCloseTest, PodFirstOverHbone) {
  HalfCloseServer banner("127.0.0.22", true, "220 bye\r\n");
  HalfCloseServer silent("127.0.0.22", true);
  StartWithHttpPorts({banner.port(), silent.port()});
  ExpectPodFirst(Outbound("127.0.0.11", "127.0.0.22", banner.port()), banner, "220 bye\r\n");
  ExpectPodFirst(Outbound("127.0.0.11", "127.0.0.22", silent.port()), silent, "");
  EXPECT_EQ(Fallbacks(node2_), 2u);
}

TEST_F(ByteStreamHalfCloseTest, PodFirstOnTheSameNodeAndForPlaintext) {
  HalfCloseServer same_node("127.0.0.12", true, "220 bye\r\n");
  HalfCloseServer plaintext("127.0.0.23", true, "220 bye\r\n");
  StartWithHttpPorts({same_node.port(), plaintext.port()});
  ExpectPodFirst(Outbound("127.0.0.11", "127.0.0.12", same_node.port()), same_node, "220 bye\r\n");
  node2_.Redirect("127.0.0.23", plaintext.port());
  ExpectPodFirst(testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port()), plaintext,
                 "220 bye\r\n");
  EXPECT_EQ(Fallbacks(node1_), 1u);
  EXPECT_EQ(Fallbacks(node2_), 1u);
}

TEST_F(ByteStreamHalfCloseTest, ClientFirstOverHboneOnTheSameNodeAndForPlaintext) {
  HalfCloseServer hbone("127.0.0.22", false);
  HalfCloseServer same_node("127.0.0.12", false);
  HalfCloseServer plaintext("127.0.0.23", false);
  StartWithHttpPorts({hbone.port(), same_node.port(), plaintext.port()});
  ExpectClientFirst(Outbound("127.0.0.11", "127.0.0.22", hbone.port()), hbone);
  ExpectClientFirst(Outbound("127.0.0.11", "127.0.0.12", same_node.port()), same_node);
  node2_.Redirect("127.0.0.23", plaintext.port());
  ExpectClientFirst(testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port()), plaintext);
  EXPECT_EQ(Fallbacks(node1_), 1u);
  EXPECT_EQ(Fallbacks(node2_), 2u);
}

// An allowed Upgrade becomes the same byte stream: the pod's FIN after the 101 does not end the client's direction.
TEST_F(ByteStreamHalfCloseTest, AnUpgradedConnectionHalfClosesToo) {
  HalfCloseServer hbone("127.0.0.22", true, "hi", /*upgrade=*/true);
  HalfCloseServer same_node("127.0.0.12", true, "hi", /*upgrade=*/true);
  StartWithHttpPorts({hbone.port(), same_node.port()});
  const std::string upgrade = "GET /ws HTTP/1.1\r\nHost: pod\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n";
  ExpectPodFirst(Outbound("127.0.0.11", "127.0.0.22", hbone.port()), hbone, kSwitching + std::string("hi"), upgrade);
  ExpectPodFirst(Outbound("127.0.0.11", "127.0.0.12", same_node.port()), same_node, kSwitching + std::string("hi"),
                 upgrade);
  EXPECT_EQ(Fallbacks(node1_) + Fallbacks(node2_), 0u);
  auto recs = log2_->records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, 101);
}

// Says a banner, then resets the connection (SO_LINGER 0). One connection.
class ResettingServer {
 public:
  explicit ResettingServer(const char* ip) {
    fd_ = testing::Listen(ip, &port_, 4);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      if (write(c, "220 hi\r\n", 8) == 8) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      linger l{1, 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      close(c);
    });
  }
  ~ResettingServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// The byte stream passes a pod's reset on as a reset (as SpliceRelay does), never as a clean end of stream.
TEST_F(ByteStreamHalfCloseTest, APodResetReachesTheClientAsAReset) {
  ResettingServer same_node("127.0.0.12");
  ResettingServer plaintext("127.0.0.23");
  StartWithHttpPorts({same_node.port(), plaintext.port()});
  node2_.Redirect("127.0.0.23", plaintext.port());
  for (int fd : {Outbound("127.0.0.11", "127.0.0.12", same_node.port()),
                 testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port())}) {
    ASSERT_GE(fd, 0);
    bool clean = true;
    errno = 0;
    EXPECT_EQ(ReadAll(fd, &clean), "220 hi\r\n");
    EXPECT_FALSE(clean);
    EXPECT_EQ(errno, ECONNRESET);
    close(fd);
  }
}

// And a client's reset reaches the pod as one (over HBONE too: the stream's reset closes the socketpair).
TEST_F(ByteStreamHalfCloseTest, AClientResetReachesThePodAsAReset) {
  HalfCloseServer hbone("127.0.0.22", false);
  HalfCloseServer same_node("127.0.0.12", false);
  HalfCloseServer plaintext("127.0.0.23", false);
  StartWithHttpPorts({hbone.port(), same_node.port(), plaintext.port()});
  node2_.Redirect("127.0.0.23", plaintext.port());
  const std::string line = "hello\r\nnot http\r\n";
  for (auto [fd, pod] :
       {std::pair{Outbound("127.0.0.11", "127.0.0.22", hbone.port()), &hbone},
        std::pair{Outbound("127.0.0.11", "127.0.0.12", same_node.port()), &same_node},
        std::pair{testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port()), &plaintext}}) {
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the line reaches the pod first
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
    EXPECT_EQ(pod->received(), line);
    EXPECT_FALSE(pod->clean_eof());
  }
}

// A client that half-closes after its requests (curl-style one-shot clients, some health checkers) still gets every
// response, then a clean close.
TEST_F(DestinationHttpTest, RequestsThenAHalfCloseStillGetTheirResponses) {
  TinyHttpServer hbone("127.0.0.22");
  TinyHttpServer same_node("127.0.0.12");
  TinyHttpServer plaintext("127.0.0.23");
  StartWithHttpPorts({hbone.port(), same_node.port(), plaintext.port()});
  node2_.Redirect("127.0.0.23", plaintext.port());
  const std::string one = "GET /one HTTP/1.1\r\nHost: pod\r\n\r\n";
  const std::string two = "GET /two HTTP/1.1\r\nHost: pod\r\n\r\n";
  auto expect = [&](int fd, const std::string& requests, const std::string& want) {
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, requests.data(), requests.size(), MSG_NOSIGNAL), static_cast<ssize_t>(requests.size()));
    shutdown(fd, SHUT_WR);
    bool clean = false;
    EXPECT_EQ(ReadAll(fd, &clean), want);
    EXPECT_TRUE(clean);
    close(fd);
  };
  const std::string r1 = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n/one";
  const std::string r2 = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n/two";
  expect(Outbound("127.0.0.11", "127.0.0.22", hbone.port()), one, r1);
  expect(Outbound("127.0.0.11", "127.0.0.22", hbone.port()), one + two, r1 + r2);  // pipelined, then the FIN
  expect(Outbound("127.0.0.11", "127.0.0.12", same_node.port()), one + two, r1 + r2);
  expect(testing::ConnectFrom("127.0.0.99", "127.0.0.23", node2_.proxy->plaintext_port()), one + two, r1 + r2);
  EXPECT_EQ(hbone.requests(), 3);
  EXPECT_EQ(same_node.requests(), 2);
  EXPECT_EQ(plaintext.requests(), 2);
  EXPECT_EQ(log2_->records().size(), 5u);
  EXPECT_EQ(Fallbacks(node1_) + Fallbacks(node2_), 0u);
}

// HTTPRoute RequestMirror on the HTTP/1.1 path (Http1Conn, source role), driven by a real worker loop on socketpairs:
// the test plays the client, the primary endpoint (answers each whole request) and the mirror backend. Service web's
// rules copy /none to Service shadow at 0 %, /all at 100 %, /half at 50 %; none retries. Each mirror is sampled when
// the request is routed, so a request no mirror took keeps nothing: it has no copy to send nor to drop, whatever its
// size or end, while the sampled share is still copied whole.
class Http1MirrorTest : public ::testing::Test {
 protected:
  static constexpr const char* kPrimary = "10.244.1.8";
  static constexpr const char* kShadow = "10.244.1.9";

  // One end of a socketpair the test plays: what it read, split into messages (content-length bodies only).
  struct End {
    int fd = -1;
    std::string in, out;
    size_t received = 0;                                        // bytes read so far
    size_t answered = 0;                                        // messages the test answered (server roles)
    std::vector<std::pair<std::string, std::string>> messages;  // head, body

    ~End() {
      if (fd >= 0) close(fd);
    }
    void Pump() {
      while (fd >= 0 && !out.empty()) {
        ssize_t n = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        out.erase(0, static_cast<size_t>(n));
      }
      char buf[16384];
      ssize_t n;
      while (fd >= 0 && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        in.append(buf, static_cast<size_t>(n));
        received += static_cast<size_t>(n);
      }
      for (;;) {
        size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) return;
        std::string head = in.substr(0, end + 4);
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        size_t len = 0, cl = lower.find("\r\ncontent-length:");
        if (cl != std::string::npos) len = std::stoul(lower.substr(cl + 17));
        if (in.size() < end + 4 + len) return;
        messages.emplace_back(head, in.substr(end + 4, len));
        in.erase(0, end + 4 + len);
      }
    }
  };

  void SetUp() override {
    ctx_ = std::make_unique<WorkerContext>(opts_, stats_, snaps_, certs_);
    ctx_->balancer = &balancer_;
    auto service = [](const char* name, const char* vip, const char* ep) {
      return testing::ShopService(name, vip, {80, 9080, agent::PortProtocol::kHttp}, ep);
    };
    agent::Service web = service("web", "10.96.0.9", kPrimary);
    agent::HttpRouting routing;
    routing.port = 80;
    for (auto [path, percent] : {std::pair{"/none", 0u}, std::pair{"/all", 100u}, std::pair{"/half", 50u}}) {
      agent::HttpRouteRule rule;
      rule.key = std::string("shop/web#") + std::to_string(routing.rules.size());
      agent::HttpRouteMatch m;
      m.has_path = true;
      m.path.type = agent::HttpMatchType::kPrefix;
      m.path.value = path;
      rule.matches = {m};
      rule.mirrors = {{{"shop", "shadow", 80, 0}, percent}};
      routing.rules.push_back(std::move(rule));
    }
    web.http_routes.push_back(std::move(routing));
    snap_ = std::make_shared<agent::MeshSnapshot>(
        kTd, "node1", MeshMode::kStrict, std::vector<Workload>{},
        std::vector<agent::Service>{web, service("shadow", "10.96.0.10", kShadow)});
    worker_.Start(*ctx_);
  }
  void TearDown() override { worker_.Stop(); }

  // A client connection to web:80; every upstream the proxy opens (primary or mirror) comes to the test.
  std::unique_ptr<End> Connect() {
    int c[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
    ctx_->loop.Post([this, down = c[1]] {
      Http1Conn::Start(
          *ctx_, down, snap_, &snap_->services()[0], 80, net::SockAddr{Ip("10.244.2.5"), 40000},
          [this](traffic::Route r, std::string*) {
            int p[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) != 0) return -1;
            std::lock_guard<std::mutex> l(mu_);  // the opener runs on the worker thread
            (r.addr.ip == Ip(kPrimary) ? primary_fds_ : shadow_fds_).push_back(p[0]);
            return p[1];
          },
          "test");
    });
    auto end = std::make_unique<End>();
    end->fd = c[0];
    return end;
  }

  // Pumps |client|, the primary endpoints (each whole request answered 200) and the mirror backends (answered, then
  // closed) until |done| or 5 s.
  template <typename F>
  bool PumpUntil(End& client, F done) {
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
         std::chrono::steady_clock::now() < deadline;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        for (auto [fds, ends] : {std::pair{&primary_fds_, &primaries_}, std::pair{&shadow_fds_, &shadows_}}) {
          for (int fd : *fds) ends->emplace_back(std::make_unique<End>())->fd = fd;
          fds->clear();
        }
      }
      client.Pump();
      for (auto* ends : {&primaries_, &shadows_}) {
        for (auto& e : *ends) {
          e->Pump();
          for (; e->answered < e->messages.size(); ++e->answered) {
            e->out += ends == &primaries_ ? "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                                          : "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
          }
          e->Pump();
          if (ends == &shadows_ && !e->messages.empty() && e->out.empty() && e->fd >= 0) {
            close(e->fd);
            e->fd = -1;
          }
        }
      }
      if (done()) return true;
      poll(nullptr, 0, 2);
    }
    return false;
  }

  static std::string Post(const std::string& path, const std::string& body) {
    return "POST " + path + " HTTP/1.1\r\nhost: web.shop\r\ncontent-length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }
  size_t Answered(const End& client, const char* status) {
    size_t n = 0;
    for (const auto& [head, body] : client.messages) n += head.starts_with(status) ? 1 : 0;
    return n;
  }
  // Sends the head and the first 10 KiB of a 100 KiB body on |path|; the primary endpoint then goes away: the request
  // never completes (the client gets a 502).
  void CutMidBody(const std::string& path) {
    auto client = Connect();
    const size_t before = primaries_.size();
    const std::string whole = Post(path, std::string(100 * 1024, 'c'));
    client->out = whole.substr(0, whole.find("\r\n\r\n") + 4 + 10 * 1024);
    ASSERT_TRUE(PumpUntil(*client, [&] {
      return client->out.empty() && primaries_.size() > before && primaries_.back()->received > 10 * 1024;
    }));
    close(primaries_.back()->fd);
    primaries_.back()->fd = -1;
    ASSERT_TRUE(PumpUntil(*client, [&] { return Answered(*client, "HTTP/1.1 502") == 1; }));
  }

  ProxyOptions opts_;
  ProxyStats stats_;
  agent::SnapshotHolder snaps_;
  agent::InMemoryCertStore certs_;
  traffic::Balancer balancer_;
  std::unique_ptr<WorkerContext> ctx_;
  std::shared_ptr<agent::MeshSnapshot> snap_;
  std::mutex mu_;
  std::vector<int> primary_fds_, shadow_fds_;
  std::vector<std::unique_ptr<End>> primaries_, shadows_;
  testing::WorkerThread worker_;  // declared last: stops before the context goes
};

TEST_F(Http1MirrorTest, ARequestNoMirrorSampledHasNoCopyToSendOrDrop) {
  // 0 %, no retries: a 100 KiB body (past the 64 KiB bound a kept request would hit) goes through whole, and a request
  // that never completes has no copy to drop either (when every request was kept until its end, it had one).
  auto client = Connect();
  const std::string big(100 * 1024, 'b');
  client->out = Post("/none/big", big);
  ASSERT_TRUE(PumpUntil(*client, [&] { return Answered(*client, "HTTP/1.1 200") == 1; }));
  ASSERT_EQ(primaries_.size(), 1u);
  ASSERT_EQ(primaries_[0]->messages.size(), 1u);
  EXPECT_EQ(primaries_[0]->messages[0].second, big);
  CutMidBody("/none/cut");
  EXPECT_EQ(stats_.http_mirrored.load(), 0u);
  EXPECT_EQ(stats_.http_mirror_dropped.load(), 0u);
  {
    std::lock_guard<std::mutex> l(mu_);
    EXPECT_TRUE(shadow_fds_.empty() && shadows_.empty()) << "a 0 % mirror opens nothing";
  }

  // 100 %: the same two requests are sampled, so each has a copy, and neither can be sent (over the bound; never
  // completed): both count as dropped.
  auto again = Connect();
  again->out = Post("/all/big", std::string(70 * 1024, 'a'));
  ASSERT_TRUE(PumpUntil(*again, [&] { return Answered(*again, "HTTP/1.1 200") == 1; }));
  EXPECT_EQ(stats_.http_mirror_dropped.load(), 1u) << "the body over the bound";
  CutMidBody("/all/cut");
  EXPECT_EQ(stats_.http_mirror_dropped.load(), 2u) << "the request that never completed";
  EXPECT_EQ(stats_.http_mirrored.load(), 0u);
  EXPECT_TRUE(shadows_.empty());
}

TEST_F(Http1MirrorTest, TheSampledShareIsStillCopiedWhole) {
  auto client = Connect();
  for (int i = 0; i < 40; ++i) client->out += Post("/half/" + std::to_string(i), "request-" + std::to_string(i));
  ASSERT_TRUE(PumpUntil(*client, [&] { return Answered(*client, "HTTP/1.1 200") == 40; }));
  // Each copy is started when its request completed, before the primary could answer it.
  const uint64_t mirrored = stats_.http_mirrored.load();
  EXPECT_EQ(stats_.http_mirror_dropped.load(), 0u);
  EXPECT_GT(mirrored, 5u) << "about half of 40";
  EXPECT_LT(mirrored, 35u) << "about half of 40";
  ASSERT_TRUE(PumpUntil(*client, [&] {
    size_t got = 0;
    for (auto& s : shadows_) got += s->messages.size();
    return got == mirrored;
  }));
  ASSERT_EQ(shadows_.size(), mirrored) << "one mirror stream per copy";
  for (auto& s : shadows_) {
    ASSERT_EQ(s->messages.size(), 1u);
    const auto& [head, body] = s->messages[0];
    EXPECT_NE(head.find("\r\nhost: web.shop-shadow\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nconnection: close\r\n"), std::string::npos) << head;
    // The copy is the request it was made of: path and body match.
    const std::string i = head.substr(11, head.find(' ', 11) - 11);
    EXPECT_EQ(head.substr(0, 11), "POST /half/") << head;
    EXPECT_EQ(body, "request-" + i);
  }
}

}  // namespace
}  // namespace zm::proxy
