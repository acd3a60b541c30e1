// IPv6 in the capture program: the same guarantees as IPv4 (capture_traffic_test.cc) with the IPv6 maps (zm_pods6,
// zm_listeners6, zm_excl_cidrs6, zm_probe_ports6) and a dual-stack topology whose helpers all speak IPv6.
#include "agent/bpf/host_routes.h"
#include "tests/integration/bpf/capture_fixture.h"

namespace zm::agent::bpf {
namespace {

using namespace testing;  // NOLINT: test helpers

class CaptureIpv6Test : public CaptureFixture {
 protected:
  CaptureIpv6Test() : CaptureFixture(/*v6=*/true) {}
};

TEST_F(CaptureIpv6Test, OutboundCapturedAndRepliesAssignedToTheUpstreamSocket) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  EXPECT_TRUE(mgr_.HasListener(ListenerSlot::kOutbound, AF_INET6));
  EXPECT_FALSE(mgr_.HasListener(ListenerSlot::kOutbound, AF_INET));
  Fd client;
  Fd down = ExpectCaptured(&client);  // getsockname: [fd00:99::2]:8080
  ASSERT_TRUE(down.valid());

  // The upstream leg sources the pod's IPv6 (IPV6_TRANSPARENT); the replies on the uplink find it by the 4-tuple.
  Fd server;
  Fd up = TransparentConnect(kPodIp6, {kExtIp6, 8080}, ext_server_, &server);
  ASSERT_TRUE(up.valid());
  ASSERT_TRUE(SendAll(client.get(), "ping"));
  ASSERT_EQ(RecvSome(down.get(), kConnectMs), "ping");
  ASSERT_TRUE(SendAll(server.get(), "pong"));
  ASSERT_EQ(RecvSome(up.get(), kConnectMs), "pong");

  CaptureStats st = Stats();
  EXPECT_EQ(st.captured_outbound, 1u);
  EXPECT_GT(st.assigned_established, 0u);
  EXPECT_EQ(st.assign_errors, 0u);
}

TEST_F(CaptureIpv6Test, StrictPodExtensionHeadersAreDropped) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  // A Destination Options header (one PadN option) on every packet of the pod's socket: TCP behind an extension header
  // is not meshed, and must not leave in plaintext either.
  Fd c = SocketIn(*topo_.pod);
  const uint8_t dstopts[8] = {0, 0, 1, 4, 0, 0, 0, 0};  // next header (kernel's), length 0 (8 bytes), PadN of 4
  ASSERT_EQ(setsockopt(c.get(), IPPROTO_IPV6, IPV6_DSTOPTS, dstopts, sizeof(dstopts)), 0) << errno;
  EXPECT_NE(ConnectTimeout(c.get(), {kExtIp6, 8080}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_server_.get(), 0).valid()) << "TCP behind an extension header left a STRICT pod";
  EXPECT_FALSE(AcceptTimeout(outbound_.get(), 0).valid());
  EXPECT_GE(Stats().dropped_ipv6, 1u);
  Fd client;  // the same connection without the header is captured
  EXPECT_TRUE(ExpectCaptured(&client).valid());
}

TEST_F(CaptureIpv6Test, StrictWithoutIpv6ListenerFailsClosed) {
  Enroll(PodMode::kStrict);
  Fd v4 = Listen("0.0.0.0", 15001, true);  // an IPv4 listener cannot take the SYN: still fail closed
  SetSlot(ListenerSlot::kOutbound, v4);
  ExpectDropped();
  EXPECT_GE(Stats().dropped_fail_closed, 1u);
}

TEST_F(CaptureIpv6Test, InboundHboneGoesToTheIpv6Listener) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kHbone, hbone_);
  Fd c = SocketIn(*topo_.ext);
  ASSERT_EQ(ConnectTimeout(c.get(), {kPodIp6, 15008}, kConnectMs), 0);
  Fd a = AcceptTimeout(hbone_.get(), kConnectMs);
  ASSERT_TRUE(a.valid());
  EXPECT_EQ(LocalAddr(a.get()), (Endpoint{kPodIp6, 15008}));
  EXPECT_EQ(PeerAddr(a.get()).ip, kExtIp6);
  // Plaintext to the STRICT pod without a plaintext listener: dropped, never at the pod.
  Fd p = SocketIn(*topo_.ext);
  EXPECT_NE(ConnectTimeout(p.get(), {kPodIp6, 80}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(pod_server_.get(), 0).valid());
}

TEST_F(CaptureIpv6Test, ExcludedIpv6CidrGoesDirect) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  const net::Cidr cidrs[] = {*net::Cidr::Parse("10.99.0.0/24"), *net::Cidr::Parse("fd00:99::/64")};
  ASSERT_TRUE(mgr_.SetExcludedCidrs(cidrs).ok());
  ExpectDirect();
  const net::Cidr v4_only[] = {cidrs[0]};
  ASSERT_TRUE(mgr_.SetExcludedCidrs(v4_only).ok());
  Fd client;
  EXPECT_TRUE(ExpectCaptured(&client).valid());
}

TEST_F(CaptureIpv6Test, EgressGuardLetsTheNodeReachProbePortsOnly) {
  Enroll(PodMode::kStrict);
  Fd probe_server;
  ASSERT_TRUE(RunInNetns(*topo_.pod, [&] { probe_server = Listen("::", 81, false); }));
  const ProbePort probes[] = {{pod_ip_, 81}};
  ASSERT_TRUE(mgr_.SetProbePorts(probes).ok());
  Fd to_probe = TcpSocket(AF_INET6);  // the node's own netns (this thread), like the kubelet
  ASSERT_EQ(ConnectTimeout(to_probe.get(), {kPodIp6, 81}, kConnectMs), 0);
  EXPECT_TRUE(AcceptTimeout(probe_server.get(), kConnectMs).valid());
  Fd other = TcpSocket(AF_INET6);
  EXPECT_NE(ConnectTimeout(other.get(), {kPodIp6, 80}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(pod_server_.get(), 0).valid()) << "the node reached a STRICT pod in plaintext";
  CaptureStats st = Stats();
  EXPECT_GE(st.passed_probe, 1u);
  EXPECT_GE(st.dropped_node_plaintext, 1u);
}

// A STRICT pod's UDP: DNS (port 53) only, as for IPv4.
TEST_F(CaptureIpv6Test, StrictPodUdpIsDnsOnly) {
  Enroll(PodMode::kStrict);
  auto udp_in = [](const Netns& ns, uint16_t port) {
    Fd fd;
    RunInNetns(ns, [&] {
      fd = Fd(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      sockaddr_storage a{};
      socklen_t len = net::SockAddr{*net::IpAddr::Parse("::"), port}.ToSockaddr(&a);
      if (port && bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) fd.reset();
    });
    return fd;
  };
  Fd dns = udp_in(*topo_.ext, 53), other = udp_in(*topo_.ext, 9999), client = udp_in(*topo_.pod, 0);
  ASSERT_TRUE(dns.valid() && other.valid() && client.valid());
  for (uint16_t port : {uint16_t{53}, uint16_t{9999}}) {
    sockaddr_storage to{};
    socklen_t len = net::SockAddr{*net::IpAddr::Parse(kExtIp6), port}.ToSockaddr(&to);
    ASSERT_EQ(sendto(client.get(), "q", 1, 0, reinterpret_cast<sockaddr*>(&to), len), 1);
  }
  EXPECT_EQ(RecvSome(dns.get(), kConnectMs), "q");
  EXPECT_EQ(RecvSome(other.get(), 300), "") << "non-DNS UDP left a STRICT pod";
  EXPECT_GE(Stats().dropped_udp, 1u);
}

// An IPv6-only pod (nothing in the IPv4 maps): its veth is known by its IPv6 (zm_veth_pods6, learned from its
// captured SYN, or written by the agent from the host route), so TCP from another address of the pod is dropped too.
TEST_F(CaptureIpv6Test, Ipv6OnlyPodIsKnownByItsVethForItsOtherAddresses) {
  const auto routes = HostRouteInterfaces();  // what the agent writes with SetVethPod (both families)
  auto route = routes.find(pod_ip_);
  ASSERT_NE(route, routes.end());
  EXPECT_EQ(route->second, if_nametoindex(kPodVeth));
  EXPECT_FALSE(routes.count(*net::IpAddr::Parse("fd00:244:1::1"))) << "the node's own address is no pod";
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  ASSERT_EQ(topo_.NodeIp("-6 route add fd00:244:1::99/128 dev " + std::string(kPodVeth)), 0);
  // Deprecated (preferred_lft 0): used when bound to, never picked as the source of the pod's own connections.
  ASSERT_EQ(Sh("ip -n " + topo_.pod->name() + " addr add fd00:244:1::99/64 dev eth0 nodad preferred_lft 0"), 0);
  auto connect_from_other = [&](int timeout_ms) {
    Fd c = SocketIn(*topo_.pod);
    sockaddr_storage a{};
    socklen_t len = net::SockAddr{*net::IpAddr::Parse("fd00:244:1::99"), 0}.ToSockaddr(&a);
    EXPECT_EQ(bind(c.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
    return ConnectTimeout(c.get(), {kExtIp6, 8080}, timeout_ms);
  };
  // Before the veth is known, an unknown source goes on as any (capture-unknown is off).
  ASSERT_EQ(connect_from_other(kConnectMs), 0);
  EXPECT_TRUE(AcceptTimeout(ext_server_.get(), kConnectMs).valid());
  Fd client;
  ASSERT_TRUE(ExpectCaptured(&client).valid());  // the pod's own SYN: the program learns its veth
  EXPECT_NE(connect_from_other(kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_server_.get(), 0).valid()) << "a STRICT pod's other address went out in plaintext";
  EXPECT_GE(Stats().dropped_ipv6, 1u);
  EXPECT_TRUE(mgr_.SetVethPod(route->second, pod_ip_).ok());
}

TEST_F(CaptureIpv6Test, PodWithoutAKnownIpv6FollowsItsIpv4Mode) {
  // zm_pods6 does not know the pod's IPv6: as before IPv6 was meshed, a STRICT pod's IPv6 TCP is dropped.
  const auto v4 = *net::IpAddr::Parse(kPodIp);
  ASSERT_TRUE(mgr_.UpsertPod(v4, PodState::kEnrolled, PodMode::kStrict).ok());
  ASSERT_TRUE(mgr_.SetVethPod(if_nametoindex(kPodVeth), v4).ok());
  SetSlot(ListenerSlot::kOutbound, outbound_);
  ExpectDropped();
  EXPECT_GE(Stats().dropped_ipv6, 1u);
  ASSERT_TRUE(mgr_.UpsertPod(v4, PodState::kEnrolled, PodMode::kPermissive).ok());
  ExpectDirect();
}

}  // namespace
}  // namespace zm::agent::bpf
