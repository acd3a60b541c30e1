// Cooperation in the tcx chain, with real programs beside ours (foreign.bpf.c): ours is attached first, returns
// TCX_NEXT for what it neither steers nor drops (the programs after it still see and decide that traffic), and the
// manager puts its links back first when another program is attached ahead of them or someone detaches them.
#include "tests/integration/bpf/chain_fixture.h"

namespace zm::agent::bpf {
namespace {

using namespace testing;  // NOLINT: test helpers

using TcxChainTest = ChainFixture;

// (a) Programs appended after ours: one drops a marked flow, one passes everything. Enrolled traffic is captured, and
// what ours does not steer reaches them: the dropper still drops its flow, the other still sees the rest.
TEST_F(TcxChainTest, ProgramsAfterOursStillSeeAndDropTheirFlows) {
  AttachOurs();
  MeshThePod();
  Foreign fx(kDroppedPort, kDirectPort);
  ASSERT_TRUE(fx.ok());
  fx.Attach(fx.drop_fd(), veth_, kAttachTcxIngress, 0);
  fx.Attach(fx.pass_fd(), veth_, kAttachTcxIngress, 0);
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress),
            (std::vector<uint32_t>{mgr_.ProgramId(), Foreign::Id(fx.drop_fd()), Foreign::Id(fx.pass_fd())}));

  ExpectCaptured();
  // A steered SYN ends the chain (TCX_PASS): the others never see the captured connection's SYN.
  EXPECT_EQ(fx.pass_watch(), 0u);

  ExpectDirect(kDirectPort);  // not steered: on to fx_drop (not its flow), then fx_pass
  EXPECT_GE(fx.drop_other(), 1u);
  EXPECT_GE(fx.pass_watch(), 1u);

  Fd c = PodSocket();
  EXPECT_NE(ConnectTimeout(c.get(), {kExtIp, kDroppedPort}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_[kDroppedPort].get(), 0).valid()) << "the marked flow was not dropped";
  EXPECT_GE(fx.drop_seen(), 1u);

  CaptureStats st = Stats();
  EXPECT_EQ(st.captured_outbound, 1u);
  EXPECT_EQ(st.dropped_fail_closed, 0u);
  EXPECT_EQ(st.attach_repairs, 0u);
}

// (c) Ours attached after a program already on the device goes first, and the packets it does not act on (a pod out
// of the mesh: every packet, both directions, ingress and egress hooks, veth and uplink) reach the next program.
TEST_F(TcxChainTest, OursGoesFirstAndPacketsItDoesNotActOnReachTheNextProgram) {
  Foreign on_veth(0, kCapturedPort), on_egress(0, 80), on_uplink(0, 0);
  ASSERT_TRUE(on_veth.ok() && on_egress.ok() && on_uplink.ok());
  // Already there, as a CNI installed before the mesh.
  on_veth.Attach(on_veth.pass_fd(), veth_, kAttachTcxIngress, 0);
  on_egress.Attach(on_egress.pass_fd(), veth_, kAttachTcxEgress, 0);
  on_uplink.Attach(on_uplink.pass_fd(), uplink_, kAttachTcxIngress, 0);
  AttachOurs();
  const uint32_t fx_veth = Foreign::Id(on_veth.pass_fd());
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{mgr_.ProgramId(), fx_veth}));
  EXPECT_EQ(Progs(uplink_, kAttachTcxIngress),
            (std::vector<uint32_t>{mgr_.ProgramId(), Foreign::Id(on_uplink.pass_fd())}));
  std::vector<uint32_t> egress = Progs(veth_, kAttachTcxEgress);
  ASSERT_EQ(egress.size(), 2u);
  EXPECT_EQ(egress[1], Foreign::Id(on_egress.pass_fd())) << "the egress guard goes first too";

  ASSERT_TRUE(mgr_.UpsertPod(pod_ip_, PodState::kNotEnrolled, PodMode::kStrict).ok());
  ASSERT_TRUE(mgr_.SetListener(ListenerSlot::kOutbound, outbound_.get()).ok());
  ExpectDirect(kCapturedPort);
  EXPECT_GE(on_veth.pass_watch(), 1u) << "the pod's SYN did not reach the program after ours";
  EXPECT_GE(on_uplink.pass_seen(), 1u) << "the server's reply did not reach the program after ours on the uplink";

  Fd c;
  ASSERT_TRUE(RunInNetns(*topo_.ext, [&] { c = TcpSocket(); }));
  ASSERT_EQ(ConnectTimeout(c.get(), {kPodIp, 80}, kConnectMs), 0);
  EXPECT_TRUE(AcceptTimeout(pod_server_.get(), kConnectMs).valid());
  EXPECT_GE(on_egress.pass_watch(), 1u) << "the SYN into the pod did not reach the program after the egress guard";
  EXPECT_EQ(Stats().captured_outbound, 0u);
}

// (b) A program attached ahead of ours (BPF_F_BEFORE) that ends the chain, then our link detached by someone else:
// each time the manager puts ours back first, capture works again, and the foreign program still sees the traffic
// ours lets go on.
TEST_F(TcxChainTest, DisplacedOrDetachedLinksArePutBackFirst) {
  AttachOurs();
  MeshThePod();
  Foreign fx(0, kDirectPort);
  ASSERT_TRUE(fx.ok());
  const uint32_t fx_id = Foreign::Id(fx.pass_fd());
  fx.Attach(fx.pass_fd(), veth_, kAttachTcxIngress, kTcxBefore);
  fx.Attach(fx.pass_fd(), veth_, kAttachTcxEgress, kTcxBefore);
  ASSERT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{fx_id, mgr_.ProgramId()}));
  ASSERT_EQ(Progs(veth_, kAttachTcxEgress).front(), fx_id);

  EXPECT_EQ(mgr_.RepairTcxPositions(), 2);  // the veth's ingress link and its egress guard; the uplink is fine
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{mgr_.ProgramId(), fx_id}));
  std::vector<uint32_t> egress = Progs(veth_, kAttachTcxEgress);
  ASSERT_EQ(egress.size(), 2u);
  EXPECT_EQ(egress[1], fx_id);
  EXPECT_EQ(Stats().attach_repairs, 2u);
  EXPECT_EQ(mgr_.RepairTcxPositions(), 0);  // nothing to do twice

  // The pin names the new link (a restarted agent adopts the link that is first).
  const std::string pin = mgr_.PinDir() + "/links/" + kPodVeth;
  int pinned = bpf_obj_get(pin.c_str());
  ASSERT_GE(pinned, 0) << pin;
  LinkInfo info;
  ASSERT_TRUE(GetLinkInfo(pinned, &info).ok());
  TcxQueryResult q;
  ASSERT_TRUE(QueryTcx(veth_, kAttachTcxIngress, &q).ok());
  ASSERT_FALSE(q.link_ids.empty());
  EXPECT_EQ(q.link_ids.front(), info.id);

  ExpectCaptured();
  ExpectDirect(kDirectPort);
  EXPECT_GE(fx.pass_watch(), 1u) << "the foreign program behind ours no longer sees the traffic ours does not act on";

  // Someone detaches our link (the pin stays, the link is defunct).
  ASSERT_EQ(bpf_link_detach(pinned), 0) << errno;
  close(pinned);
  ASSERT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{fx_id}));
  EXPECT_EQ(mgr_.RepairTcxPositions(), 1);
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{mgr_.ProgramId(), fx_id}));
  EXPECT_EQ(Stats().attach_repairs, 3u);
  ExpectCaptured();
  const uint64_t watched = fx.pass_watch();
  ExpectDirect(kDirectPort);
  EXPECT_GT(fx.pass_watch(), watched);

  // A restarted agent adopts the repaired pins: one link of ours per hook, first.
  BpfManager restarted;
  Status s = restarted.Init(topo_.prefix);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{restarted.ProgramId(), fx_id}));
  EXPECT_EQ(Progs(veth_, kAttachTcxEgress).size(), 2u);
}

// A legacy tc program on the same device (a cls_bpf filter on clsact, as older CNIs attach): tcx runs first, so ours
// steers enrolled traffic, and what ours lets go on (TCX_NEXT) reaches the filters, which still drop their flow.
TEST_F(TcxChainTest, LegacyClsactProgramsOnTheSameDeviceCoexist) {
  Foreign fx(kDroppedPort, kDirectPort);
  ASSERT_TRUE(fx.ok());
  fx.AttachTc(fx.drop_fd(), veth_, /*egress=*/false, /*prio=*/1, /*handle=*/1);
  fx.AttachTc(fx.pass_fd(), veth_, /*egress=*/false, /*prio=*/2, /*handle=*/1);
  AttachOurs();
  MeshThePod();
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{mgr_.ProgramId()}));

  ExpectCaptured();
  EXPECT_EQ(fx.pass_watch(), 0u);
  ExpectDirect(kDirectPort);
  EXPECT_GE(fx.drop_other(), 1u);
  EXPECT_GE(fx.pass_watch(), 1u) << "the legacy filter behind ours no longer sees the traffic ours does not act on";
  Fd c = PodSocket();
  EXPECT_NE(ConnectTimeout(c.get(), {kExtIp, kDroppedPort}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_[kDroppedPort].get(), 0).valid()) << "the legacy filter's flow was not dropped";
  EXPECT_GE(fx.drop_seen(), 1u);
  EXPECT_EQ(Stats().captured_outbound, 1u);
}

}  // namespace
}  // namespace zm::agent::bpf
