// Shared by the tests of our programs beside others (tcx_chain_test.cc, tc_fallback_test.cc): "foreign" programs
// (foreign.bpf.c) attached as a CNI or a firewall would, with tcx links or clsact filters, and a fixture with a pod, an
// external host, our manager in a given attach mode and the checks "captured" / "went direct".
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
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

namespace zm::agent::bpf::testing {

inline constexpr int kConnectMs = 2000;
inline constexpr int kNoSynAckMs = 1500;
inline constexpr uint16_t kCapturedPort = 8080;  // enrolled traffic: captured by ours
inline constexpr uint16_t kDirectPort = 8081;    // excluded from capture: ours lets it go on
inline constexpr uint16_t kDroppedPort = 9090;   // excluded from capture, dropped by fx_drop (the marked flow)

// One loaded instance of foreign.bpf.c; its links are closed (detached) with it, its tc filters removed.
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
    for (auto& [hook, opts] : filters_) {
      opts.prog_fd = 0;
      opts.prog_id = 0;
      opts.flags = 0;
      bpf_tc_detach(&hook, &opts);
    }
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
  // A legacy tc program: a cls_bpf direct-action filter on clsact (created if missing) at tc priority `prio`.
  void AttachTc(int prog_fd, uint32_t ifindex, bool egress, uint32_t prio, uint32_t handle) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
                .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    ASSERT_TRUE(err == 0 || err == -EEXIST) << err;
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = handle, .priority = prio);
    ASSERT_EQ(bpf_tc_attach(&hook, &opts), 0);
    filters_.emplace_back(hook, opts);
  }
  uint64_t drop_seen() const { return Read(skel_->bss->drop_seen); }
  uint64_t drop_other() const { return Read(skel_->bss->drop_other); }
  uint64_t pass_seen() const { return Read(skel_->bss->pass_seen); }
  uint64_t pass_watch() const { return Read(skel_->bss->pass_watch); }

 private:
  static uint64_t Read(const uint64_t& v) { return *static_cast<const volatile uint64_t*>(&v); }
  foreign_bpf* skel_ = nullptr;
  std::vector<int> links_;
  std::vector<std::pair<bpf_tc_hook, bpf_tc_opts>> filters_;
};

// The manager runs in mode() (tcx unless a test's fixture says otherwise).
class ChainFixture : public ::testing::Test {
 protected:
  virtual AttachMode mode() const { return AttachMode::kTcx; }

  void SetUp() override {
    ASSERT_EQ(topo_.Create(/*with_ext=*/true), "");
    in_node_.emplace(*topo_.node);
    ASSERT_TRUE(in_node_->ok());
    Status s = PolicyRouting::Ensure();
    ASSERT_TRUE(s.ok()) << s.message();
    s = mgr_.Init(topo_.prefix, kDefaultPinRoot, mode());
    ASSERT_TRUE(s.ok()) << s.message();
    veth_ = if_nametoindex(kPodVeth);
    uplink_ = if_nametoindex(kUplink);
    ASSERT_NE(veth_, 0u);
    ASSERT_NE(uplink_, 0u);
    pod_ip_ = *net::IpAddr::Parse(kPodIp);
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

  // Programs at a tcx hook, in order.
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
  uint32_t veth_ = 0, uplink_ = 0;
  net::IpAddr pod_ip_;
  Fd outbound_, pod_server_;
  std::map<uint16_t, Fd> ext_;
};

}  // namespace zm::agent::bpf::testing
