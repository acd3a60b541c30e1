// Design T end to end at the BPF level: real TCP from a pod netns through the node netns, where the capture program
// (tcx ingress on the pod veth and on the uplink) steers SYNs into listeners put in the SOCKMAP slots.
#include "tests/integration/bpf/capture_fixture.h"

namespace zm::agent::bpf {
namespace {

using namespace testing;  // NOLINT: test helpers

class CaptureTrafficTest : public CaptureFixture {};

TEST_F(CaptureTrafficTest, OutboundCapturedAndRelayedTransparently) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  Fd client;
  Fd down = ExpectCaptured(&client);
  ASSERT_TRUE(down.valid());

  // The proxy's upstream leg: bound to the pod's own IP (IP_TRANSPARENT); the replies come back on the uplink and
  // are steered to this socket by the 4-tuple lookup.
  Fd server;
  Fd up = TransparentConnect(kPodIp, {kExtIp, 8080}, ext_server_, &server);  // the destination sees the pod's address
  ASSERT_TRUE(up.valid());

  ASSERT_TRUE(SendAll(client.get(), "ping"));
  ASSERT_EQ(RecvSome(down.get(), kConnectMs), "ping");
  ASSERT_TRUE(SendAll(up.get(), "ping"));
  ASSERT_EQ(RecvSome(server.get(), kConnectMs), "ping");
  ASSERT_TRUE(SendAll(server.get(), "pong"));
  ASSERT_EQ(RecvSome(up.get(), kConnectMs), "pong");
  ASSERT_TRUE(SendAll(down.get(), "pong"));
  ASSERT_EQ(RecvSome(client.get(), kConnectMs), "pong");

  CaptureStats st = Stats();
  EXPECT_EQ(st.captured_outbound, 1u);
  EXPECT_GT(st.assigned_established, 0u);
  EXPECT_EQ(st.dropped_fail_closed, 0u);
  EXPECT_EQ(st.assign_errors, 0u);
}

TEST_F(CaptureTrafficTest, AgentRestartKeepsFlowsAndCapture) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  Fd client;
  Fd down = ExpectCaptured(&client);
  ASSERT_TRUE(down.valid());

  // A second manager on the same agent id = a restarted agent: new program swapped into the pinned links.
  BpfManager restarted;
  Status s = restarted.Init(topo_.prefix);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_NE(restarted.ProgramId(), mgr_.ProgramId());
  for (const auto& a : restarted.Attachments()) EXPECT_EQ(a.prog_id, restarted.ProgramId()) << a.ifname;
  EXPECT_EQ(restarted.Attachments().size(), 2u);

  ASSERT_TRUE(SendAll(client.get(), "still there"));  // the established flow is still steered to the proxy
  EXPECT_EQ(RecvSome(down.get(), kConnectMs), "still there");
  Fd client2;
  EXPECT_TRUE(ExpectCaptured(&client2).valid());  // pods, roles and the listener slot survived
}

TEST_F(CaptureTrafficTest, SynReusingATimeWaitTupleIsCapturedAgain) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  const uint16_t port = 40123;
  auto bound_client = [&] {
    Fd c = SocketIn(*topo_.pod);
    int one = 1;
    setsockopt(c.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = pod_ip_.v4();
    EXPECT_EQ(bind(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    return c;
  };
  {
    Fd c = bound_client();
    ASSERT_EQ(ConnectTimeout(c.get(), {kExtIp, 8080}, kConnectMs), 0);
    Fd down = AcceptTimeout(outbound_.get(), kConnectMs);
    ASSERT_TRUE(down.valid());
    down.reset();                                  // the proxy side closes first and keeps the 4-tuple in TIME_WAIT
    EXPECT_EQ(RecvSome(c.get(), kConnectMs), "");  // FIN seen
  }
  ASSERT_NE(testing::ShOutput("nsenter --net=" + topo_.node->Path() + " ss -Htn state time-wait sport = :8080")
                .find(std::to_string(port)),
            std::string::npos)
      << "precondition: proxy-side TIME_WAIT socket";
  Fd c = bound_client();
  ASSERT_EQ(ConnectTimeout(c.get(), {kExtIp, 8080}, kConnectMs), 0);
  Fd down = AcceptTimeout(outbound_.get(), kConnectMs);
  ASSERT_TRUE(down.valid());
  EXPECT_EQ(LocalAddr(down.get()), (Endpoint{kExtIp, 8080}));
  EXPECT_EQ(PeerAddr(down.get()).port, port);
}

TEST_F(CaptureTrafficTest, StrictWithoutListenerFailsClosed) {
  Enroll(PodMode::kStrict);
  {
    // The agent dies: its listener closes and the kernel empties the slot by itself.
    Fd l = Listen("0.0.0.0", 15011, true);
    SetSlot(ListenerSlot::kOutbound, l);
    EXPECT_TRUE(mgr_.HasListener(ListenerSlot::kOutbound));
  }
  EXPECT_FALSE(mgr_.HasListener(ListenerSlot::kOutbound));
  ExpectDropped();
  EXPECT_GE(Stats().dropped_fail_closed, 1u);
}

TEST_F(CaptureTrafficTest, StrictPodSegmentsWithoutOwnerAreDropped) {
  // A direct flow opened before enrollment: once the pod is STRICT its segments must not reach the wire.
  ASSERT_TRUE(mgr_.UpsertPod(pod_ip_, PodState::kNotEnrolled, PodMode::kStrict).ok());
  Fd c = SocketIn(*topo_.pod);
  ASSERT_EQ(ConnectTimeout(c.get(), {kExtIp, 8080}, kConnectMs), 0);
  Fd server = AcceptTimeout(ext_server_.get(), kConnectMs);
  ASSERT_TRUE(server.valid());
  Enroll(PodMode::kStrict);
  ASSERT_TRUE(SendAll(c.get(), "secret"));
  EXPECT_EQ(RecvSome(server.get(), 500), "") << "plaintext left a STRICT pod";
  EXPECT_GE(Stats().dropped_orphan, 1u);
  Enroll(PodMode::kPermissive);  // the retransmission now goes through
  EXPECT_EQ(RecvSome(server.get(), 3000), "secret");
}

TEST_F(CaptureTrafficTest, PermissiveWithoutListenerGoesDirect) {
  Enroll(PodMode::kPermissive);
  ExpectDirect();
  EXPECT_GE(Stats().passed_fail_open, 1u);
}

TEST_F(CaptureTrafficTest, NotEnrolledPodGoesDirect) {
  SetSlot(ListenerSlot::kOutbound, outbound_);
  ASSERT_TRUE(mgr_.UpsertPod(pod_ip_, PodState::kNotEnrolled, PodMode::kStrict).ok());
  ExpectDirect();
  ASSERT_TRUE(mgr_.RemovePod(pod_ip_).ok());  // unknown pod, capture-unknown off
  ExpectDirect();
  EXPECT_EQ(Stats().captured_outbound, 0u);
}

TEST_F(CaptureTrafficTest, CaptureUnknownHoldsPodsWithoutConfig) {
  SetSlot(ListenerSlot::kOutbound, outbound_);
  ASSERT_TRUE(mgr_.SetCaptureUnknown(true).ok());
  Fd client;
  EXPECT_TRUE(ExpectCaptured(&client).valid());
  // Without a listener an unknown pod is treated as STRICT.
  ASSERT_TRUE(mgr_.ClearListener(ListenerSlot::kOutbound).ok());
  Fd c = SocketIn(*topo_.pod);
  EXPECT_NE(ConnectTimeout(c.get(), {kExtIp, 8080}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_server_.get(), 0).valid());
  // A known, not enrolled pod is never captured.
  ASSERT_TRUE(mgr_.UpsertPod(pod_ip_, PodState::kNotEnrolled, PodMode::kStrict).ok());
  ExpectDirect();
}

TEST_F(CaptureTrafficTest, ExcludedPortsAndCidrsGoDirect) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kOutbound, outbound_);
  const uint16_t ports[] = {8080};
  ASSERT_TRUE(mgr_.SetExcludedPorts(ports).ok());
  ExpectDirect();
  ASSERT_TRUE(mgr_.SetExcludedPorts({}).ok());
  const net::Cidr cidrs[] = {*net::Cidr::Parse("10.99.0.0/24")};
  ASSERT_TRUE(mgr_.SetExcludedCidrs(cidrs).ok());
  ExpectDirect();
  ASSERT_TRUE(mgr_.SetExcludedCidrs({}).ok());
  Fd client;
  EXPECT_TRUE(ExpectCaptured(&client).valid());
}

TEST_F(CaptureTrafficTest, InboundHboneAndPlaintextGoToTheirListeners) {
  Enroll(PodMode::kStrict);
  SetSlot(ListenerSlot::kHbone, hbone_);
  SetSlot(ListenerSlot::kPlaintext, plaintext_);
  Fd c1 = SocketIn(*topo_.ext);
  ASSERT_EQ(ConnectTimeout(c1.get(), {kPodIp, 15008}, kConnectMs), 0);
  Fd a1 = AcceptTimeout(hbone_.get(), kConnectMs);
  ASSERT_TRUE(a1.valid());
  EXPECT_EQ(LocalAddr(a1.get()), (Endpoint{kPodIp, 15008}));
  EXPECT_EQ(PeerAddr(a1.get()).ip, kExtIp);

  Fd c2 = SocketIn(*topo_.ext);
  ASSERT_EQ(ConnectTimeout(c2.get(), {kPodIp, 80}, kConnectMs), 0);
  Fd a2 = AcceptTimeout(plaintext_.get(), kConnectMs);
  ASSERT_TRUE(a2.valid());
  EXPECT_EQ(LocalAddr(a2.get()), (Endpoint{kPodIp, 80}));
  EXPECT_FALSE(AcceptTimeout(pod_server_.get(), 0).valid()) << "plaintext reached the enrolled pod";
  ASSERT_TRUE(SendAll(c2.get(), "hi"));
  EXPECT_EQ(RecvSome(a2.get(), kConnectMs), "hi");

  // The inbound proxy connects to the pod with the client's address; the STRICT pod's replies to that foreign
  // address come back through the 4-tuple lookup on the pod veth (not dropped, not forwarded).
  Fd at_pod;
  Fd up = TransparentConnect(kExtIp, {kPodIp, 80}, pod_server_, &at_pod);
  ASSERT_TRUE(up.valid());
  ASSERT_TRUE(SendAll(up.get(), "hi"));
  EXPECT_EQ(RecvSome(at_pod.get(), kConnectMs), "hi");
  ASSERT_TRUE(SendAll(at_pod.get(), "hello"));
  EXPECT_EQ(RecvSome(up.get(), kConnectMs), "hello");

  CaptureStats st = Stats();
  EXPECT_EQ(st.captured_hbone, 1u);
  EXPECT_EQ(st.captured_plaintext, 1u);
}

TEST_F(CaptureTrafficTest, InboundWithoutListenersFollowsTheDestinationMode) {
  Enroll(PodMode::kStrict);
  Fd c1 = SocketIn(*topo_.ext);
  EXPECT_NE(ConnectTimeout(c1.get(), {kPodIp, 80}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(pod_server_.get(), 0).valid()) << "STRICT pod got plaintext";
  Fd c2 = SocketIn(*topo_.ext);
  EXPECT_NE(ConnectTimeout(c2.get(), {kPodIp, 15008}, kNoSynAckMs), 0);  // HBONE never bypasses the proxy

  Enroll(PodMode::kPermissive);
  Fd c3 = SocketIn(*topo_.ext);
  ASSERT_EQ(ConnectTimeout(c3.get(), {kPodIp, 80}, kConnectMs), 0);
  Fd a3 = AcceptTimeout(pod_server_.get(), kConnectMs);
  ASSERT_TRUE(a3.valid());
  EXPECT_EQ(PeerAddr(a3.get()).ip, kExtIp);
  EXPECT_GE(Stats().dropped_fail_closed, 2u);
}

}  // namespace
}  // namespace zm::agent::bpf
