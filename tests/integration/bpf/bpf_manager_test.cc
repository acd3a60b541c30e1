// BpfManager lifecycle against the real kernel: load, tcx attach, pins, restart reuse, detach, destroy.
// Runs as root inside namespaces created by the test; the test thread enters the node netns.
#include "agent/bpf/bpf_manager.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <net/if.h>

#include <unistd.h>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>

#include "agent/bpf/pin_dir.h"
#include "agent/bpf/tcx.h"
#include "tests/integration/bpf/sock_util.h"
#include "tests/integration/bpf/topology.h"

namespace zm::agent::bpf {
namespace {

using testing::kPodIp;
using testing::kPodVeth;
namespace fs = std::filesystem;

class BpfManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err = topo_.Create(/*with_ext=*/false);
    ASSERT_EQ(err, "");
    in_node_.emplace(*topo_.node);
    ASSERT_TRUE(in_node_->ok());
    agent_id_ = topo_.prefix;
    pin_dir_ = std::string(kDefaultPinRoot) + "/" + agent_id_;
    veth_index_ = if_nametoindex(kPodVeth);
    ASSERT_NE(veth_index_, 0u);
  }
  void TearDown() override {
    mgr_.reset();
    EXPECT_TRUE(BpfManager::Purge(agent_id_).ok());
    in_node_.reset();  // back to the original netns before the namespaces go
  }

  std::unique_ptr<BpfManager> NewManager() {
    auto m = std::make_unique<BpfManager>();
    Status s = m->Init(agent_id_);
    EXPECT_TRUE(s.ok()) << s.message();
    return s.ok() ? std::move(m) : nullptr;
  }

  std::vector<uint32_t> ProgsOn(uint32_t ifindex) {
    TcxQueryResult q;
    Status s = QueryTcxIngress(ifindex, &q);
    EXPECT_TRUE(s.ok()) << s.message();
    return q.prog_ids;
  }

  testing::Topology topo_;
  std::optional<testing::ScopedNetns> in_node_;
  std::string agent_id_, pin_dir_;
  uint32_t veth_index_ = 0;
  std::unique_ptr<BpfManager> mgr_;
};

TEST_F(BpfManagerTest, LoadsAndAttachesTcxLinkIdempotently) {
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  EXPECT_NE(mgr_->ProgramId(), 0u);
  for (const char* map :
       {"zm_ifaces", "zm_pods", "zm_listeners", "zm_excl_ports", "zm_excl_cidrs", "zm_cfg", "zm_stats"}) {
    EXPECT_TRUE(fs::exists(pin_dir_ + "/" + map)) << map;
  }
  EXPECT_TRUE(ProgsOn(veth_index_).empty());

  Status s = mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ProgsOn(veth_index_), std::vector<uint32_t>{mgr_->ProgramId()});
  EXPECT_TRUE(fs::exists(pin_dir_ + "/links/" + kPodVeth));

  s = mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth);  // again: no second program
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ProgsOn(veth_index_).size(), 1u);

  auto att = mgr_->Attachments();
  ASSERT_EQ(att.size(), 1u);
  EXPECT_EQ(att[0].ifname, kPodVeth);
  EXPECT_EQ(att[0].ifindex, veth_index_);
  EXPECT_EQ(att[0].role, IfaceRole::kPodVeth);
  EXPECT_EQ(att[0].prog_id, mgr_->ProgramId());
  EXPECT_NE(att[0].link_id, 0u);

  // A mismatched name/index pair is refused rather than pinned under a wrong name.
  EXPECT_FALSE(mgr_->Attach(veth_index_, "nosuchif0", IfaceRole::kPodVeth).ok());
}

TEST_F(BpfManagerTest, RestartReusesMapsAndRepointsPinnedLink) {
  auto pod_ip = net::IpAddr::Parse(kPodIp), pod_ip6 = net::IpAddr::Parse(testing::kPodIp6);
  ASSERT_TRUE(pod_ip && pod_ip6);
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  ASSERT_TRUE(mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth).ok());
  ASSERT_TRUE(mgr_->UpsertPod(*pod_ip, PodState::kEnrolled, PodMode::kPermissive).ok());
  ASSERT_TRUE(mgr_->UpsertPod(*pod_ip6, PodState::kEnrolled, PodMode::kStrict).ok());
  const uint32_t old_prog = mgr_->ProgramId();
  const uint32_t link_id = mgr_->Attachments().at(0).link_id;

  mgr_.reset();  // agent exits: fds closed, pins keep the link and the maps alive
  EXPECT_EQ(ProgsOn(veth_index_), std::vector<uint32_t>{old_prog});

  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  PodEntry pod;
  Status s = mgr_->LookupPod(*pod_ip, &pod);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(pod.state, PodState::kEnrolled);
  EXPECT_EQ(pod.mode, PodMode::kPermissive);
  s = mgr_->LookupPod(*pod_ip6, &pod);  // the IPv6 map is pinned too
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(pod.ip, *pod_ip6);
  EXPECT_EQ(pod.mode, PodMode::kStrict);

  EXPECT_NE(mgr_->ProgramId(), old_prog);
  EXPECT_EQ(ProgsOn(veth_index_), std::vector<uint32_t>{mgr_->ProgramId()});  // same link, new program
  auto att = mgr_->Attachments();
  ASSERT_EQ(att.size(), 1u);
  EXPECT_EQ(att[0].link_id, link_id);
  EXPECT_EQ(att[0].role, IfaceRole::kPodVeth);
  EXPECT_TRUE(mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth).ok());
  EXPECT_EQ(ProgsOn(veth_index_).size(), 1u);
}

// An agent from before IPv6 pinned only the IPv4 maps: the upgraded agent keeps them (and their entries) and adds the
// IPv6 ones beside them.
TEST_F(BpfManagerTest, UpgradeFromPinsWithoutTheIpv6Maps) {
  auto pod_ip = net::IpAddr::Parse(kPodIp), pod_ip6 = net::IpAddr::Parse(testing::kPodIp6);
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  ASSERT_TRUE(mgr_->UpsertPod(*pod_ip, PodState::kEnrolled, PodMode::kStrict).ok());
  mgr_.reset();
  for (const char* m : {"zm_pods6", "zm_listeners6", "zm_excl_cidrs6", "zm_probe_ports6"}) {
    ASSERT_TRUE(fs::remove(pin_dir_ + "/" + m)) << m;
  }
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  PodEntry pod;
  EXPECT_TRUE(mgr_->LookupPod(*pod_ip, &pod).ok());
  ASSERT_TRUE(mgr_->UpsertPod(*pod_ip6, PodState::kEnrolled, PodMode::kStrict).ok());
  for (const char* m : {"zm_pods6", "zm_listeners6", "zm_excl_cidrs6", "zm_probe_ports6"}) {
    EXPECT_TRUE(fs::exists(pin_dir_ + "/" + m)) << m;
  }
}

TEST_F(BpfManagerTest, InitUnpinsLinksOfVanishedInterfaces) {
  ASSERT_EQ(topo_.NodeIp("link add zmgone0 type veth peer name zmgone1"), 0);
  const uint32_t gone = if_nametoindex("zmgone0");
  ASSERT_NE(gone, 0u);
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  ASSERT_TRUE(mgr_->Attach(gone, "zmgone0", IfaceRole::kPodVeth).ok());
  ASSERT_TRUE(mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth).ok());
  mgr_.reset();
  ASSERT_EQ(topo_.NodeIp("link del zmgone0"), 0);

  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  EXPECT_FALSE(fs::exists(pin_dir_ + "/links/zmgone0"));
  EXPECT_TRUE(fs::exists(pin_dir_ + "/links/" + std::string(kPodVeth)));
  auto att = mgr_->Attachments();
  ASSERT_EQ(att.size(), 1u);
  EXPECT_EQ(att[0].ifname, kPodVeth);
}

TEST_F(BpfManagerTest, RecreatedInterfaceGetsAFreshLink) {
  ASSERT_EQ(topo_.NodeIp("link add zmre0 type veth peer name zmre1"), 0);
  const uint32_t first = if_nametoindex("zmre0");
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  ASSERT_TRUE(mgr_->Attach(first, "zmre0", IfaceRole::kPodVeth).ok());
  ASSERT_EQ(topo_.NodeIp("link del zmre0"), 0);
  ASSERT_EQ(topo_.NodeIp("link add zmre0 type veth peer name zmre1"), 0);
  const uint32_t second = if_nametoindex("zmre0");
  ASSERT_NE(first, second);
  Status s = mgr_->Attach(second, "zmre0", IfaceRole::kPodVeth);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ProgsOn(second), std::vector<uint32_t>{mgr_->ProgramId()});
  auto att = mgr_->Attachments();
  ASSERT_EQ(att.size(), 1u);
  EXPECT_EQ(att[0].ifindex, second);
}

TEST_F(BpfManagerTest, DetachAndDestroyLeaveNothing) {
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  ASSERT_TRUE(mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth).ok());
  ASSERT_TRUE(mgr_->Detach(kPodVeth).ok());
  EXPECT_TRUE(ProgsOn(veth_index_).empty());
  EXPECT_FALSE(fs::exists(pin_dir_ + "/links/" + std::string(kPodVeth)));
  EXPECT_TRUE(mgr_->Detach(kPodVeth).ok());  // idempotent

  ASSERT_TRUE(mgr_->Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth).ok());
  Status s = mgr_->Destroy();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(ProgsOn(veth_index_).empty());
  EXPECT_FALSE(fs::exists(pin_dir_));
  EXPECT_FALSE(mgr_->UpsertPod(*net::IpAddr::Parse(kPodIp), PodState::kEnrolled, PodMode::kStrict).ok());  // unusable
}

TEST_F(BpfManagerTest, IncompatiblePinnedMapIsAClearErrorUntilPurged) {
  // A zm_pods pinned by some other build, with another value layout.
  ASSERT_TRUE(EnsureBpffsDir(pin_dir_).ok());
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "zm_pods", 4, 8, 16, nullptr);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(bpf_obj_pin(fd, (pin_dir_ + "/zm_pods").c_str()), 0);
  close(fd);
  BpfManager m;
  Status s = m.Init(agent_id_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Purge"), std::string::npos) << s.message();
  EXPECT_FALSE(m.Attach(veth_index_, kPodVeth, IfaceRole::kPodVeth).ok());  // not initialized: refused
  ASSERT_TRUE(BpfManager::Purge(agent_id_).ok());
  s = m.Init(agent_id_);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(BpfManagerTest, MapOperations) {
  mgr_ = NewManager();
  ASSERT_TRUE(mgr_);
  auto a = net::IpAddr::Parse("10.244.1.11"), b = net::IpAddr::Parse("10.244.1.12");
  auto a6 = net::IpAddr::Parse("fd00:244:1::11"), b6 = net::IpAddr::Parse("fd00:244:1::12");
  ASSERT_TRUE(mgr_->UpsertPod(*a, PodState::kEnrolled, PodMode::kStrict).ok());
  ASSERT_TRUE(mgr_->UpsertPod(*b, PodState::kNotEnrolled, PodMode::kStrict).ok());
  ASSERT_TRUE(mgr_->UpsertPod(*a6, PodState::kEnrolled, PodMode::kPermissive).ok());
  ASSERT_TRUE(mgr_->UpsertPod(*b6, PodState::kNotEnrolled, PodMode::kStrict).ok());
  EXPECT_FALSE(mgr_->UpsertPod(net::IpAddr(), PodState::kEnrolled, PodMode::kStrict).ok());  // no address
  std::vector<PodEntry> pods;
  ASSERT_TRUE(mgr_->ListPods(&pods).ok());
  std::set<std::string> listed;
  for (const auto& p : pods) listed.insert(p.ip.ToString() + (p.mode == PodMode::kStrict ? " strict" : " permissive"));
  EXPECT_EQ(listed, (std::set<std::string>{"10.244.1.11 strict", "10.244.1.12 strict", "fd00:244:1::11 permissive",
                                           "fd00:244:1::12 strict"}));
  for (const auto& ip : {*b, *b6}) {
    ASSERT_TRUE(mgr_->RemovePod(ip).ok());
    EXPECT_TRUE(mgr_->RemovePod(ip).ok());
    PodEntry e;
    Status s = mgr_->LookupPod(ip, &e);
    EXPECT_EQ(s.error_code(), ENOENT) << ip.ToString();
  }
  PodEntry e;
  ASSERT_TRUE(mgr_->LookupPod(*a6, &e).ok());
  EXPECT_EQ(e.state, PodState::kEnrolled);

  const uint16_t ports[] = {22, 9090};
  EXPECT_TRUE(mgr_->SetExcludedPorts(ports).ok());
  const uint16_t fewer[] = {9090};
  EXPECT_TRUE(mgr_->SetExcludedPorts(fewer).ok());
  const net::Cidr cidrs[] = {*net::Cidr::Parse("10.96.0.0/12"), *net::Cidr::Parse("169.254.169.254"),
                             *net::Cidr::Parse("fd00:96::/108")};
  EXPECT_TRUE(mgr_->SetExcludedCidrs(cidrs).ok());
  const net::Cidr bad[] = {net::Cidr{*a6, 129}};
  EXPECT_FALSE(mgr_->SetExcludedCidrs(bad).ok());  // a clear error, nothing written
  const ProbePort probes[] = {{*a, 8081}, {*a6, 8081}};
  EXPECT_TRUE(mgr_->SetProbePorts(probes).ok());
  const ProbePort unset[] = {{net::IpAddr(), 8081}};
  EXPECT_FALSE(mgr_->SetProbePorts(unset).ok());
  EXPECT_TRUE(mgr_->SetCaptureUnknown(true).ok());
  EXPECT_FALSE(mgr_->HasListener(ListenerSlot::kOutbound));
  EXPECT_FALSE(mgr_->SetListener(ListenerSlot::kOutbound, 0).ok());  // stdin is no TCP socket: clear error
  // The socket's family picks the map: an IPv6 listener fills zm_listeners6, not the IPv4 slot.
  testing::Fd l6 = testing::Listen("::", 15001, /*transparent=*/true);
  ASSERT_TRUE(l6.valid());
  Status s = mgr_->SetListener(ListenerSlot::kOutbound, l6.get());
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(mgr_->HasListener(ListenerSlot::kOutbound, AF_INET6));
  EXPECT_FALSE(mgr_->HasListener(ListenerSlot::kOutbound, AF_INET));
  EXPECT_TRUE(mgr_->ClearListener(ListenerSlot::kOutbound, AF_INET6).ok());
  EXPECT_FALSE(mgr_->HasListener(ListenerSlot::kOutbound, AF_INET6));
  CaptureStats st;
  EXPECT_TRUE(mgr_->Stats(&st).ok());
  EXPECT_EQ(st.captured_outbound, 0u);
}

}  // namespace
}  // namespace zm::agent::bpf
