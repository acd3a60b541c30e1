// Cooperation in the tcx chain, with real programs beside ours (foreign.bpf.c): ours is attached first, returns
// TCX_NEXT for what it neither steers nor drops (the programs after it still see and decide that traffic), and the
// manager puts its links back first when another program is attached ahead of them or someone detaches them.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <optional>
#include <vector>

#include "agent/bpf/bpf_manager.h"
#include "agent/bpf/policy_routing.h"
#include "agent/bpf/tcx.h"
#include "foreign.skel.h"
#include "tests/integration/bpf/sock_util.h"
#include "tests/integration/bpf/topology.h"

namespace zm::agent::bpf {
namespace {

using namespace testing;  // NOLINT: test helpers

constexpr int kConnectMs = 2000;
constexpr int kNoSynAckMs = 1500;
constexpr uint16_t kCapturedPort = 8080;  // enrolled traffic: captured by ours
constexpr uint16_t kDirectPort = 8081;    // excluded from capture: ours lets it go on
constexpr uint16_t kDroppedPort = 9090;   // excluded from capture, dropped by fx_drop (the marked flow)

// One loaded instance of foreign.bpf.c; its links are closed (detached) with it.
class Foreign {
 public:
  Foreign(uint16_t drop_port, uint16_t watch_port) {
    skel_ = foreign_bpf__open();
    if (!skel_) return;
    skel_->rodata->drop_port = drop_port;
    skel_->rodata->watch_port = watch_port;
    if (foreign_bpf__load(skel_) != 0) {
      foreign_bpf__destroy(skel_);
      skel_ = nullptr;
    }
  }
  ~Foreign() {
    for (int fd : links_) close(fd);
    if (skel_) foreign_bpf__destroy(skel_);
  }
  bool ok() const { return skel_ != nullptr; }
  int drop_fd() const { return bpf_program__fd(skel_->progs.fx_drop); }
  int pass_fd() const { return bpf_program__fd(skel_->progs.fx_pass); }
  static uint32_t Id(int prog_fd) {
    uint32_t id = 0;
    EXPECT_TRUE(GetProgId(prog_fd, &id).ok());
    return id;
  }
  // flags: 0 = appended (after ours), kTcxBefore = ahead of everything.
  void Attach(int prog_fd, uint32_t ifindex, int attach_type, uint32_t flags) {
    int fd = -1;
    Status s = AttachTcx(prog_fd, ifindex, attach_type, flags, &fd);
    ASSERT_TRUE(s.ok()) << s.message();
    links_.push_back(fd);
  }
  uint64_t drop_seen() const { return Read(skel_->bss->drop_seen); }
  uint64_t drop_other() const { return Read(skel_->bss->drop_other); }
  uint64_t pass_seen() const { return Read(skel_->bss->pass_seen); }
  uint64_t pass_watch() const { return Read(skel_->bss->pass_watch); }

 private:
  static uint64_t Read(const uint64_t& v) { return *static_cast<const volatile uint64_t*>(&v); }
  foreign_bpf* skel_ = nullptr;
  std::vector<int> links_;
};

class TcxChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(topo_.Create(/*with_ext=*/true), "");
    in_node_.emplace(*topo_.node);
    ASSERT_TRUE(in_node_->ok());
    Status s = PolicyRouting::Ensure();
    ASSERT_TRUE(s.ok()) << s.message();
    s = mgr_.Init(topo_.prefix);
    ASSERT_TRUE(s.ok()) << s.message();
    veth_ = if_nametoindex(kPodVeth);
    uplink_ = if_nametoindex(kUplink);
    ASSERT_NE(veth_, 0u);
    ASSERT_NE(uplink_, 0u);
    pod_ip_ = *ParseIpv4(kPodIp);
    outbound_ = Listen("0.0.0.0", 15001, /*transparent=*/true);
    ASSERT_TRUE(outbound_.valid());
    ASSERT_TRUE(RunInNetns(*topo_.ext, [&] {
      for (uint16_t p : {kCapturedPort, kDirectPort, kDroppedPort}) ext_[p] = Listen("0.0.0.0", p, false);
    }));
    ASSERT_TRUE(RunInNetns(*topo_.pod, [&] { pod_server_ = Listen("0.0.0.0", 80, false); }));
    for (uint16_t p : {kCapturedPort, kDirectPort, kDroppedPort}) ASSERT_TRUE(ext_[p].valid());
    ASSERT_TRUE(pod_server_.valid());
  }

  void TearDown() override {
    Status s = mgr_.Destroy();
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(BpfManager::Purge(topo_.prefix).ok());
    in_node_.reset();
  }

  void AttachOurs() {
    Status s = mgr_.Attach(veth_, kPodVeth, IfaceRole::kPodVeth);
    ASSERT_TRUE(s.ok()) << s.message();
    s = mgr_.Attach(uplink_, kUplink, IfaceRole::kUplink);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  // Enrolled STRICT pod with an outbound listener; kDirectPort and kDroppedPort are excluded from capture.
  void MeshThePod() {
    ASSERT_TRUE(mgr_.UpsertPod(pod_ip_, PodState::kEnrolled, PodMode::kStrict).ok());
    ASSERT_TRUE(mgr_.SetListener(ListenerSlot::kOutbound, outbound_.get()).ok());
    const uint16_t excluded[] = {kDirectPort, kDroppedPort};
    ASSERT_TRUE(mgr_.SetExcludedPorts(excluded).ok());
  }

  static std::vector<uint32_t> Progs(uint32_t ifindex, int attach_type) {
    TcxQueryResult q;
    Status s = QueryTcx(ifindex, attach_type, &q);
    EXPECT_TRUE(s.ok()) << s.message();
    return q.prog_ids;
  }

  Fd PodSocket() {
    Fd fd;
    RunInNetns(*topo_.pod, [&] { fd = TcpSocket(); });
    return fd;
  }

  // pod -> ext:kCapturedPort reaches the outbound listener (never the server) and the program counted it.
  void ExpectCaptured() {
    const uint64_t before = Stats().captured_outbound;
    Fd c = PodSocket();
    ASSERT_EQ(ConnectTimeout(c.get(), {kExtIp, kCapturedPort}, kConnectMs), 0);
    Fd a = AcceptTimeout(outbound_.get(), kConnectMs);
    ASSERT_TRUE(a.valid()) << "outbound listener got nothing: the capture program did not run";
    EXPECT_EQ(LocalAddr(a.get()), (Endpoint{kExtIp, kCapturedPort}));
    EXPECT_FALSE(AcceptTimeout(ext_[kCapturedPort].get(), 0).valid()) << "the SYN leaked to the destination";
    EXPECT_EQ(Stats().captured_outbound, before + 1);
  }

  // pod -> ext:port arrives at the real server.
  void ExpectDirect(uint16_t port) {
    Fd c = PodSocket();
    ASSERT_EQ(ConnectTimeout(c.get(), {kExtIp, port}, kConnectMs), 0);
    Fd a = AcceptTimeout(ext_[port].get(), kConnectMs);
    ASSERT_TRUE(a.valid()) << "ext server on " << port << " did not see the connection";
    EXPECT_FALSE(AcceptTimeout(outbound_.get(), 0).valid());
  }

  CaptureStats Stats() {
    CaptureStats st;
    EXPECT_TRUE(mgr_.Stats(&st).ok());
    return st;
  }

  Topology topo_;
  std::optional<ScopedNetns> in_node_;
  BpfManager mgr_;
  uint32_t veth_ = 0, uplink_ = 0, pod_ip_ = 0;
  Fd outbound_, pod_server_;
  std::map<uint16_t, Fd> ext_;
};

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

}  // namespace
}  // namespace zm::agent::bpf
