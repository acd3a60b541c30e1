// The node proxy's IPv6 listeners, on ::1 (the one IPv6 address a unit test has): what they accept takes the IPv4
// paths (plaintext to a PERMISSIVE pod, passthrough from an unenrolled pod, inbound HBONE with a "[v6]:port"
// authority), and the pod is reached from the client's IPv6 address. Without listen_addr6 there are none.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <mutex>
#include <string>

#include "agent/proxy/node_proxy.h"
#include "agent/state/cert_store.h"
#include "tests/unit/proxy/loopback.h"
#include "tests/unit/proxy/raw_hbone.h"
#include "tests/unit/proxy/test_certs.h"

namespace zm::proxy {
namespace {

using agent::MeshMode;
using testing::Ip;

constexpr char kTd[] = "cluster.local";
constexpr char kWebId[] = "spiffe://cluster.local/ns/default/sa/web";

bool Ipv6Available() {
  std::ifstream f("/proc/sys/net/ipv6/conf/all/disable_ipv6");
  char c = '0';
  if (f.get(c) && c == '1') return false;
  uint16_t port = 0;
  try {
    close(testing::Listen("::1", &port));
  } catch (...) {
    return false;
  }
  return true;
}

// A proxy of one worker on loopback (ephemeral ports, IPv6 on |listen6| if set), without IP_TRANSPARENT.
ProxyOptions LoopbackOptions(net::IpAddr listen6) {
  ProxyOptions o;
  o.workers = 1;
  o.outbound_port = o.hbone_port = o.plaintext_port = 0;
  o.listen_addr = Ip("127.0.0.1");
  o.listen_addr6 = listen6;
  o.transparent_listeners = false;
  return o;
}

class Ipv6ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Ipv6Available()) GTEST_SKIP() << "no IPv6 on this host";
  }

  // One node; the pod "web" (service account web) at ::1 with |enrolled| and |mode|.
  void Start(bool enrolled, MeshMode mode) {
    agent::Workload w;
    w.name = "web";
    w.ns = "default";
    w.service_account = "web";
    w.ips = {Ip("::1")};
    w.node = "node1";
    w.enrolled = enrolled;
    w.mode = mode;
    snaps_.Set(std::make_shared<agent::MeshSnapshot>(kTd, "node1", MeshMode::kStrict, std::vector{w}));
    agent::IdentityMaterial m;
    std::string err;
    ASSERT_TRUE(tls::ParseSpiffeId(kWebId, &m.id, &err)) << err;
    m.creds = testing::MakeLeaf(ca_, {kWebId});
    std::vector<agent::IdentityMaterial> ids;
    ids.push_back(std::move(m));
    ASSERT_TRUE(certs_.Replace(kTd, testing::Roots(ca_), std::move(ids), &err)) << err;

    ProxyOptions o = LoopbackOptions(Ip("::1"));
    o.source_bind = SourceBind::kPlain;
    o.connect_timeout = std::chrono::milliseconds(2000);
    // Plays the BPF redirect: a connection captured by the IPv6 outbound or plaintext listener was meant for the pod.
    o.original_dst = [this](int fd, net::SockAddr* dst) {
      if (!LocalAddr(fd, dst)) return false;
      std::lock_guard<std::mutex> l(mu_);
      if (dst->port == captured_[0] || dst->port == captured_[1]) dst->port = pod_port_;
      return true;
    };
    proxy_ = std::make_unique<NodeProxy>(std::move(o), snaps_, certs_);
    ASSERT_TRUE(proxy_->Start(&err)) << err;
    std::lock_guard<std::mutex> l(mu_);
    captured_[0] = proxy_->outbound6_port();
    captured_[1] = proxy_->plaintext6_port();
  }
  void PodAt(uint16_t port) {
    std::lock_guard<std::mutex> l(mu_);
    pod_port_ = port;
  }
  // |pod| is the pod behind the proxy; a connection from ::1 to the proxy's listener on |listener_port| (-1 on error).
  int DialPod(const testing::EchoServer& pod, uint16_t listener_port) {
    PodAt(pod.port());
    return testing::ConnectFrom("::1", "::1", listener_port);
  }
  void TearDown() override {
    if (proxy_) proxy_->Stop();
  }

  testing::TestCa ca_ = testing::MakeCa("mesh root");
  agent::SnapshotHolder snaps_;
  agent::InMemoryCertStore certs_;
  std::unique_ptr<NodeProxy> proxy_;
  std::mutex mu_;
  uint16_t captured_[2] = {0, 0};
  uint16_t pod_port_ = 0;
};

TEST_F(Ipv6ProxyTest, ListenersAreOpenBesideTheIpv4Ones) {
  Start(true, MeshMode::kStrict);
  ASSERT_TRUE(proxy_->has_ipv6());
  for (int fd : {proxy_->outbound6_fd(), proxy_->hbone6_fd(), proxy_->plaintext6_fd()}) {
    ASSERT_GE(fd, 0);
    int family = 0, v6only = 0;
    socklen_t len = sizeof(family);
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len), 0);
    EXPECT_EQ(family, AF_INET6);
    len = sizeof(v6only);
    ASSERT_EQ(getsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
    EXPECT_EQ(v6only, 1);  // IPv4 has its own listeners
  }
  EXPECT_NE(proxy_->outbound6_port(), 0);
  EXPECT_GE(proxy_->outbound_fd(), 0);
  EXPECT_NE(proxy_->outbound6_fd(), proxy_->outbound_fd());
}

TEST_F(Ipv6ProxyTest, NoIpv6ListenersWithoutAnAddress) {
  NodeProxy p(LoopbackOptions(net::IpAddr()), snaps_, certs_);
  std::string err;
  ASSERT_TRUE(p.Start(&err)) << err;
  EXPECT_FALSE(p.has_ipv6());
  EXPECT_EQ(p.outbound6_fd(), -1);
  EXPECT_EQ(p.hbone6_fd(), -1);
  EXPECT_EQ(p.plaintext6_fd(), -1);
  EXPECT_GE(p.outbound_fd(), 0);
  p.Stop();
}

// A node with net.ipv6.conf.all.disable_ipv6 = 1 runs: IPv4 listeners only (as the sysctl is read; here a file).
TEST_F(Ipv6ProxyTest, DisabledIpv6LeavesTheIpv6ListenersOut) {
  char dir[] = "/tmp/zm-ipv6-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string sysctl = std::string(dir) + "/disable_ipv6";
  for (const char* value : {"1\n", "0\n"}) {
    std::ofstream(sysctl) << value;
    ProxyOptions o = LoopbackOptions(Ip("::1"));
    o.ipv6_disabled_sysctl = sysctl;
    NodeProxy p(std::move(o), snaps_, certs_);
    std::string err;
    ASSERT_TRUE(p.Start(&err)) << err;
    EXPECT_EQ(p.has_ipv6(), value[0] == '0') << value;
    EXPECT_EQ(p.hbone6_fd() >= 0, value[0] == '0') << value;
    EXPECT_GE(p.hbone_fd(), 0);
    p.Stop();
  }
  unlink(sysctl.c_str());
  rmdir(dir);
}

TEST_F(Ipv6ProxyTest, PlaintextToAPermissivePodKeepsTheClientsAddress) {
  Start(true, MeshMode::kPermissive);
  testing::EchoServer pod("::1");
  int fd = DialPod(pod, proxy_->plaintext6_port());
  ASSERT_GE(fd, 0);
  std::string data = testing::RandomBytes(256 << 10, 6);
  EXPECT_TRUE(testing::Exchange(fd, data) == data);
  close(fd);
  ASSERT_EQ(pod.peers().size(), 1u);
  EXPECT_EQ(pod.peers()[0], "::1");
  EXPECT_EQ(proxy_->stats().plaintext_accepted.load(), 1u);
}

TEST_F(Ipv6ProxyTest, StrictPodRefusesIpv6PlaintextToo) {
  Start(true, MeshMode::kStrict);
  testing::EchoServer pod("::1");
  int fd = DialPod(pod, proxy_->plaintext6_port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(pod.accepted(), 0);
  EXPECT_EQ(proxy_->stats().denials.load(), 1u);
}

TEST_F(Ipv6ProxyTest, OutboundFromAnUnenrolledPodPassesThrough) {
  Start(false, MeshMode::kStrict);
  testing::EchoServer dest("::1");
  int fd = DialPod(dest, proxy_->outbound6_port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(testing::Exchange(fd, "over ipv6"), "over ipv6");
  close(fd);
  EXPECT_EQ(proxy_->stats().outbound_accepted.load(), 1u);
  EXPECT_EQ(proxy_->stats().passthrough.load(), 1u);
  ASSERT_EQ(dest.peers().size(), 1u);
  EXPECT_EQ(dest.peers()[0], "::1");
}

// An HBONE client (the pod's own identity: the only one ::1 may speak for) asks for "[::1]:port": relayed to the pod;
// an unbracketed, portless or foreign authority is a 400.
TEST_F(Ipv6ProxyTest, HboneConnectWithABracketedAuthority) {
  Start(true, MeshMode::kStrict);
  testing::EchoServer pod("::1");
  std::string err;
  auto c = testing::RawHbone::Dial("::1", "::1", proxy_->hbone6_port(), testing::MakeLeaf(ca_, {kWebId}),
                                   testing::Roots(ca_), kTd, &err);
  ASSERT_TRUE(c) << err;
  std::string port = std::to_string(pod.port());
  EXPECT_EQ(c->Connect("[::1]:" + port, {"for=\"[::1]:41234\""}, &err), 200) << err;
  // A for= of the other family, or a bracketed IPv4, is not the source: the first is ignored (the pod is connected to
  // from the connection's address), the second is malformed.
  EXPECT_EQ(c->Connect("[::1]:" + port, {"for=\"10.244.9.9:41234\""}, &err), 200) << err;
  EXPECT_EQ(c->Connect("[::1]:" + port, {"for=\"[10.244.9.9]:41234\""}, &err), 400) << err;
  EXPECT_EQ(c->Connect("::1:" + port, {}, &err), 400) << err;
  EXPECT_EQ(c->Connect("[::1]", {}, &err), 400) << err;
  EXPECT_EQ(c->Connect("[::2]:" + port, {}, &err), 400) << err;      // not the address this connection was dialled to
  EXPECT_EQ(c->Connect("127.0.0.1:" + port, {}, &err), 400) << err;  // nor another family
  EXPECT_EQ(proxy_->stats().hbone_streams_accepted.load(), 2u);
  EXPECT_EQ(proxy_->stats().bad_requests.load(), 5u);
  for (int i = 0; i < 200 && pod.peers().size() < 2; ++i) usleep(10000);  // the pod's accept runs on its own thread
  EXPECT_EQ(pod.peers(), (std::vector<std::string>{"::1", "::1"}));
}

}  // namespace
}  // namespace zm::proxy
