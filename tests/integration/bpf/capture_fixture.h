// The fixture of the capture tests (capture_traffic_test.cc for IPv4, capture_ipv6_test.cc for IPv6): the topology of
// topology.h with the BPF program on the pod veth and the uplink, "proxy" listeners on 15001/15008/15006 in the node
// netns (the test thread), and real servers in the ext netns (8080) and in the pod (80). In IPv6 mode the topology is
// dual stack and the listeners and servers are IPv6 ones (IPV6_V6ONLY): every address the helpers use is IPv6.
#pragma once

#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>

#include "agent/bpf/bpf_manager.h"
#include "agent/bpf/policy_routing.h"
#include "tests/integration/bpf/sock_util.h"
#include "tests/integration/bpf/topology.h"

namespace zm::agent::bpf::testing {

inline constexpr int kConnectMs = 2000;
inline constexpr int kNoSynAckMs = 1500;  // long enough for a SYN-ACK on veths, short enough for the suite

class CaptureFixture : public ::testing::Test {
 protected:
  explicit CaptureFixture(bool v6 = false)
      : v6_(v6), pod_(v6 ? kPodIp6 : kPodIp), ext_(v6 ? kExtIp6 : kExtIp), any_(v6 ? "::" : "0.0.0.0") {}

  void SetUp() override {
    std::string err = topo_.Create(/*with_ext=*/true, v6_);
    ASSERT_EQ(err, "");
    in_node_.emplace(*topo_.node);
    ASSERT_TRUE(in_node_->ok());
    Status s = PolicyRouting::Ensure({}, v6_ ? AF_INET6 : AF_INET);
    ASSERT_TRUE(s.ok()) << s.message();
    s = mgr_.Init(topo_.prefix);
    ASSERT_TRUE(s.ok()) << s.message();
    s = mgr_.Attach(if_nametoindex(kPodVeth), kPodVeth, IfaceRole::kPodVeth);
    ASSERT_TRUE(s.ok()) << s.message();
    s = mgr_.Attach(if_nametoindex(kUplink), kUplink, IfaceRole::kUplink);
    ASSERT_TRUE(s.ok()) << s.message();
    pod_ip_ = *net::IpAddr::Parse(pod_);

    // The "proxy" listeners live in the node netns (this thread), like the agent's.
    outbound_ = Listen(any_, 15001, /*transparent=*/true);
    hbone_ = Listen(any_, 15008, true);
    plaintext_ = Listen(any_, 15006, true);
    ASSERT_TRUE(outbound_.valid() && hbone_.valid() && plaintext_.valid());
    // A real server behind the uplink, and one inside the pod.
    ASSERT_TRUE(RunInNetns(*topo_.ext, [&] { ext_server_ = Listen(any_, 8080, false); }));
    ASSERT_TRUE(RunInNetns(*topo_.pod, [&] { pod_server_ = Listen(any_, 80, false); }));
    ASSERT_TRUE(ext_server_.valid() && pod_server_.valid());
  }

  void TearDown() override {
    Status s = mgr_.Destroy();
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(BpfManager::Purge(topo_.prefix).ok());
    in_node_.reset();
  }

  int family() const { return v6_ ? AF_INET6 : AF_INET; }

  Fd SocketIn(const Netns& ns) {
    Fd fd;
    RunInNetns(ns, [&] { fd = TcpSocket(family()); });
    return fd;
  }

  // A node-netns socket sourcing a foreign address, like the proxy's upstream sockets.
  Fd TransparentFrom(const char* ip) {
    Fd fd = TcpSocket(family());
    int one = 1;
    if (setsockopt(fd.get(), v6_ ? SOL_IPV6 : SOL_IP, v6_ ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof(one)) !=
        0) {
      return Fd();
    }
    // As the proxy's upstream sockets: the egress guard of a STRICT pod's veth admits only the proxy's SYNs.
    uint32_t mark = ZM_MARK_PROXY;
    if (setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) return Fd();
    sockaddr_storage src{};
    socklen_t len = net::SockAddr{*net::IpAddr::Parse(ip), 0}.ToSockaddr(&src);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&src), len) != 0) return Fd();
    return fd;
  }

  // A proxy leg with a foreign source: a transparent socket from |from| connected to |to|, whose server |listener|
  // accepts it into *accepted and sees |from| as the peer. The replies reach the socket only by the BPF 4-tuple lookup.
  // Invalid (with a test failure) when a step fails.
  Fd TransparentConnect(const char* from, const Endpoint& to, const Fd& listener, Fd* accepted) {
    Fd up = TransparentFrom(from);
    EXPECT_TRUE(up.valid()) << "transparent socket from " << from;
    if (!up.valid() || ConnectTimeout(up.get(), to, kConnectMs) != 0) {
      ADD_FAILURE() << "no connection from " << from << " to " << to.ip << ":" << to.port;
      return Fd();
    }
    *accepted = AcceptTimeout(listener.get(), kConnectMs);
    EXPECT_TRUE(accepted->valid()) << "not accepted at " << to.ip << ":" << to.port;
    if (!accepted->valid()) return Fd();
    EXPECT_EQ(PeerAddr(accepted->get()).ip, from);  // the far end sees the source kept
    return up;
  }

  void Enroll(PodMode mode) { ASSERT_TRUE(mgr_.UpsertPod(pod_ip_, PodState::kEnrolled, mode).ok()); }
  void SetSlot(ListenerSlot slot, const Fd& l) {
    Status s = mgr_.SetListener(slot, l.get());
    ASSERT_TRUE(s.ok()) << s.message();
  }
  CaptureStats Stats() {
    CaptureStats st;
    EXPECT_TRUE(mgr_.Stats(&st).ok());
    return st;
  }

  // Connects pod -> ext:8080 and expects it to arrive at the real ext server, untouched by the proxy.
  void ExpectDirect(uint16_t port = 8080) {
    Fd c = SocketIn(*topo_.pod);
    ASSERT_EQ(ConnectTimeout(c.get(), {ext_, port}, kConnectMs), 0);
    Fd a = AcceptTimeout(ext_server_.get(), kConnectMs);
    ASSERT_TRUE(a.valid()) << "ext server did not see the connection";
    EXPECT_EQ(PeerAddr(a.get()).ip, pod_);
    EXPECT_FALSE(AcceptTimeout(outbound_.get(), 0).valid()) << "proxy must not see a direct connection";
  }

  // Connects pod -> ext:8080 and expects the outbound listener to get it with the original destination.
  Fd ExpectCaptured(Fd* client) {
    *client = SocketIn(*topo_.pod);
    EXPECT_EQ(ConnectTimeout(client->get(), {ext_, 8080}, kConnectMs), 0);
    Fd a = AcceptTimeout(outbound_.get(), kConnectMs);
    EXPECT_TRUE(a.valid()) << "outbound listener got nothing";
    if (!a.valid()) return a;
    EXPECT_EQ(LocalAddr(a.get()), (Endpoint{ext_, 8080}));   // original destination
    EXPECT_EQ(PeerAddr(a.get()), LocalAddr(client->get()));  // true client address
    EXPECT_FALSE(AcceptTimeout(ext_server_.get(), 0).valid()) << "the SYN leaked to the destination";
    return a;
  }

  // Connects pod -> ext:8080 and expects no answer and nothing at either end (dropped).
  void ExpectDropped() {
    Fd c = SocketIn(*topo_.pod);
    EXPECT_NE(ConnectTimeout(c.get(), {ext_, 8080}, kNoSynAckMs), 0);
    EXPECT_FALSE(AcceptTimeout(ext_server_.get(), 0).valid()) << "plaintext escaped in STRICT mode";
    EXPECT_FALSE(AcceptTimeout(outbound_.get(), 0).valid());
  }

  const bool v6_;
  const char* const pod_;  // the pod's address and the ext host's, in the fixture's family
  const char* const ext_;
  const char* const any_;
  Topology topo_;
  std::optional<ScopedNetns> in_node_;
  BpfManager mgr_;
  net::IpAddr pod_ip_;
  Fd outbound_, hbone_, plaintext_, ext_server_, pod_server_;
};

}  // namespace zm::agent::bpf::testing
