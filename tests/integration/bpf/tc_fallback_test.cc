// The fallback for kernels without tcx, forced on this one: the same programs as cls_bpf direct-action filters on
// clsact. Capture and the guards work as in tcx mode, legacy tc programs at other priorities still decide what ours
// lets go on, a removed filter (or a deleted clsact qdisc) is put back, a restarted agent swaps the program in place,
// and an agent switching modes moves the interfaces' hooks without leaving both or neither.
#include "agent/bpf/tc_clsact.h"
#include "tests/integration/bpf/chain_fixture.h"

namespace zm::agent::bpf {
namespace {

using namespace testing;  // NOLINT: test helpers

class TcFallbackTest : public ChainFixture {
 protected:
  AttachMode mode() const override { return AttachMode::kTc; }

  static uint32_t Filter(uint32_t ifindex, TcDirection dir) {
    uint32_t id = 0;
    Status s = QueryClsact(ifindex, dir, kTcDefaultPriority, &id);
    EXPECT_TRUE(s.ok()) << s.message();
    return id;
  }

  uint32_t GuardId() {
    for (const auto& a : mgr_.Attachments()) EXPECT_TRUE(a.tc) << a.ifname;
    return Filter(veth_, TcDirection::kEgress);
  }
};

TEST_F(TcFallbackTest, SameProgramsAsFiltersAndLegacyFiltersStillDecide) {
  EXPECT_EQ(mgr_.Mode(), AttachMode::kTc);
  Foreign fx(kDroppedPort, kDirectPort);
  ASSERT_TRUE(fx.ok());
  fx.AttachTc(fx.drop_fd(), veth_, /*egress=*/false, /*prio=*/10, /*handle=*/1);  // a CNI's, before the mesh
  AttachOurs();
  fx.AttachTc(fx.pass_fd(), veth_, /*egress=*/false, /*prio=*/20, /*handle=*/1);  // and one after it
  MeshThePod();
  // No tcx link of ours; our filters on the veth (both directions) and the uplink.
  EXPECT_TRUE(Progs(veth_, kAttachTcxIngress).empty());
  EXPECT_TRUE(Progs(veth_, kAttachTcxEgress).empty());
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), mgr_.ProgramId());
  EXPECT_EQ(Filter(uplink_, TcDirection::kIngress), mgr_.ProgramId());
  EXPECT_NE(GuardId(), 0u);

  ExpectCaptured();
  EXPECT_EQ(fx.pass_watch(), 0u) << "a steered SYN must end the filter chain";
  ExpectDirect(kDirectPort);  // not steered: TC_ACT_UNSPEC goes on to the prio 10 and 20 filters
  EXPECT_GE(fx.drop_other(), 1u);
  EXPECT_GE(fx.pass_watch(), 1u);
  Fd c = PodSocket();
  EXPECT_NE(ConnectTimeout(c.get(), {kExtIp, kDroppedPort}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_[kDroppedPort].get(), 0).valid()) << "the legacy filter's flow was not dropped";
  EXPECT_GE(fx.drop_seen(), 1u);

  // STRICT with no proxy: the pod's new connection is dropped by our filter, as in tcx mode (fail closed).
  ASSERT_TRUE(mgr_.ClearListener(ListenerSlot::kOutbound).ok());
  Fd d = PodSocket();
  EXPECT_NE(ConnectTimeout(d.get(), {kExtIp, kCapturedPort}, kNoSynAckMs), 0);
  EXPECT_FALSE(AcceptTimeout(ext_[kCapturedPort].get(), 0).valid()) << "plaintext escaped with no proxy";
  EXPECT_GE(Stats().dropped_fail_closed, 1u);
}

TEST_F(TcFallbackTest, RemovedFiltersAreRepairedAndARestartSwapsTheProgramInPlace) {
  AttachOurs();
  MeshThePod();
  ASSERT_TRUE(DetachClsact(veth_, TcDirection::kIngress, kTcDefaultPriority).ok());
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), 0u);
  EXPECT_EQ(mgr_.RepairTcxPositions(), 1);
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), mgr_.ProgramId());
  EXPECT_EQ(mgr_.RepairTcxPositions(), 0);
  ExpectCaptured();

  // Another tool deletes and re-creates the clsact qdisc: both our filters on the veth are gone, and come back.
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(veth_),
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  ASSERT_EQ(bpf_tc_hook_destroy(&hook), 0);
  EXPECT_EQ(Filter(veth_, TcDirection::kEgress), 0u);
  EXPECT_EQ(mgr_.RepairTcxPositions(), 2);
  EXPECT_NE(GuardId(), 0u);
  EXPECT_EQ(Stats().attach_repairs, 3u);
  bool said = false;
  for (const auto& a : mgr_.Attachments()) {
    if (a.ifname == kPodVeth) said = a.repairs == 3 && a.last_repair == "ingress removed, egress removed";
  }
  EXPECT_TRUE(said);
  ExpectCaptured();

  // A restarted agent (new program) takes the filters over in place: same handle, the new program, nothing doubled.
  BpfManager restarted;
  Status s = restarted.Init(topo_.prefix, kDefaultPinRoot, AttachMode::kTc);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_NE(restarted.ProgramId(), mgr_.ProgramId());
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), restarted.ProgramId());
  EXPECT_EQ(Filter(uplink_, TcDirection::kIngress), restarted.ProgramId());
  EXPECT_EQ(restarted.Attachments().size(), 2u);
  EXPECT_TRUE(Progs(veth_, kAttachTcxIngress).empty());
  ExpectCaptured();
}

TEST_F(TcFallbackTest, SwitchingModesMovesTheHooksWithoutLeavingBothOrNeither) {
  // An agent in tcx mode first (same pins: the same agent id).
  BpfManager tcx;
  Status s = tcx.Init(topo_.prefix, kDefaultPinRoot, AttachMode::kTcx);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(tcx.Attach(veth_, kPodVeth, IfaceRole::kPodVeth).ok());
  ASSERT_TRUE(tcx.Attach(uplink_, kUplink, IfaceRole::kUplink).ok());
  MeshThePod();
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{tcx.ProgramId()}));
  ExpectCaptured();

  // Restarted in tc mode: filters first, then the links go; the pins with them.
  BpfManager tc;
  s = tc.Init(topo_.prefix, kDefaultPinRoot, AttachMode::kTc);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(Progs(veth_, kAttachTcxIngress).empty());
  EXPECT_TRUE(Progs(veth_, kAttachTcxEgress).empty());
  EXPECT_TRUE(Progs(uplink_, kAttachTcxIngress).empty());
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), tc.ProgramId());
  EXPECT_NE(Filter(veth_, TcDirection::kEgress), 0u);
  EXPECT_EQ(Filter(uplink_, TcDirection::kIngress), tc.ProgramId());
  EXPECT_EQ(tc.Attachments().size(), 2u) << "the moved interfaces are managed in tc mode";
  EXPECT_NE(access((tc.PinDir() + "/links/" + kPodVeth).c_str(), F_OK), 0);
  ExpectCaptured();

  // And back to tcx (a kernel upgrade): once the link is on, our filters go.
  BpfManager back;
  s = back.Init(topo_.prefix, kDefaultPinRoot, AttachMode::kTcx);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(back.Attach(veth_, kPodVeth, IfaceRole::kPodVeth).ok());
  ASSERT_TRUE(back.Attach(uplink_, kUplink, IfaceRole::kUplink).ok());
  EXPECT_EQ(Progs(veth_, kAttachTcxIngress), (std::vector<uint32_t>{back.ProgramId()}));
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), 0u);
  EXPECT_EQ(Filter(veth_, TcDirection::kEgress), 0u);
  EXPECT_EQ(Filter(uplink_, TcDirection::kIngress), 0u);
  ExpectCaptured();
}

// Purge (the uninstall path without a loaded manager) removes the filters too: tc filters have no pins to take them.
TEST_F(TcFallbackTest, PurgeRemovesTheFilters) {
  AttachOurs();
  ASSERT_NE(Filter(veth_, TcDirection::kIngress), 0u);
  EXPECT_TRUE(BpfManager::Purge(topo_.prefix).ok());
  EXPECT_EQ(Filter(veth_, TcDirection::kIngress), 0u);
  EXPECT_EQ(Filter(veth_, TcDirection::kEgress), 0u);
  EXPECT_EQ(Filter(uplink_, TcDirection::kIngress), 0u);
}

}  // namespace
}  // namespace zm::agent::bpf
