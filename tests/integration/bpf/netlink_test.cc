// LinkWatcher and PolicyRouting against real rtnetlink, inside a namespace created by the test.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

#include "agent/bpf/conntrack_bypass.h"
#include "agent/bpf/link_watcher.h"
#include "agent/bpf/policy_routing.h"
#include "tests/integration/bpf/topology.h"

namespace zm::agent::bpf {
namespace {

using testing::Netns;
using testing::ScopedNetns;

class NetlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ns_ = Netns::Create(testing::RandomPrefix() + "-nl");
    ASSERT_TRUE(ns_);
    in_ns_.emplace(*ns_);
    ASSERT_TRUE(in_ns_->ok());
  }
  void TearDown() override { in_ns_.reset(); }
  int Ip(const std::string& args) { return testing::Sh("ip -n " + ns_->name() + " " + args); }
  std::string IpOut(const std::string& args) { return testing::ShOutput("ip -n " + ns_->name() + " " + args); }
  std::string Nft(const std::string& args) {
    return testing::ShOutput("ip netns exec " + ns_->name() + " nft " + args + " 2>&1");
  }

  std::unique_ptr<Netns> ns_;
  std::optional<ScopedNetns> in_ns_;
};

// Polls the watcher until pred() holds or ~3 s pass.
template <typename Pred>
bool PumpUntil(LinkWatcher& w, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (!w.Wait(100).ok()) return false;
  }
  return true;
}

TEST_F(NetlinkTest, LinkWatcherReportsExistingNewAndRemovedLinks) {
  std::vector<LinkEvent> events;
  LinkWatcher w([&](const LinkEvent& e) { events.push_back(e); });
  Status s = w.Start();
  ASSERT_TRUE(s.ok()) << s.message();
  auto seen = [&](LinkEvent::Type t, const std::string& name) {
    for (const auto& e : events)
      if (e.type == t && e.name == name) return &e;
    return static_cast<const LinkEvent*>(nullptr);
  };
  ASSERT_TRUE(PumpUntil(w, [&] { return w.dump_done(); }));
  ASSERT_TRUE(seen(LinkEvent::Type::kAdded, "lo"));  // from the initial dump
  EXPECT_EQ(seen(LinkEvent::Type::kAdded, "lo")->ifindex, 1u);

  ASSERT_EQ(Ip("link add zmwa type veth peer name zmwb"), 0);
  ASSERT_TRUE(PumpUntil(w, [&] { return seen(LinkEvent::Type::kAdded, "zmwa") != nullptr; }));
  const LinkEvent a = *seen(LinkEvent::Type::kAdded, "zmwa");  // a copy: events grows below
  EXPECT_EQ(a.kind, "veth");
  EXPECT_NE(a.ifindex, 0u);
  EXPECT_FALSE(a.admin_up);

  ASSERT_EQ(Ip("link set zmwa up"), 0);
  ASSERT_TRUE(PumpUntil(w, [&] {
    for (const auto& e : events)
      if (e.name == "zmwa" && e.admin_up) return true;
    return false;
  }));

  ASSERT_EQ(Ip("link del zmwa"), 0);
  ASSERT_TRUE(PumpUntil(w, [&] { return seen(LinkEvent::Type::kRemoved, "zmwa") != nullptr; }));
  EXPECT_EQ(seen(LinkEvent::Type::kRemoved, "zmwa")->ifindex, a.ifindex);
}

TEST_F(NetlinkTest, PolicyRoutingIsIdempotentAndRemovable) {
  ASSERT_EQ(Ip("link set lo up"), 0);
  for (int i = 0; i < 2; ++i) {
    Status s = PolicyRouting::Ensure();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  std::string rules = IpOut("rule show");
  const std::string want_rule = "from all fwmark 0x200/0xf00 lookup 100";
  auto first = rules.find(want_rule);
  ASSERT_NE(first, std::string::npos) << rules;
  EXPECT_EQ(rules.find(want_rule, first + 1), std::string::npos) << "duplicate rule:\n" << rules;
  EXPECT_NE(rules.find("100:\t" + want_rule), std::string::npos) << rules;
  std::string routes = IpOut("route show table 100");
  EXPECT_NE(routes.find("local default dev lo"), std::string::npos) << routes;

  Status s = PolicyRouting::Remove();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(IpOut("rule show").find("fwmark 0x200"), std::string::npos);
  EXPECT_EQ(IpOut("route show table 100").find("local"), std::string::npos);
  EXPECT_TRUE(PolicyRouting::Remove().ok());
}

TEST_F(NetlinkTest, PolicyRoutingForIpv6) {
  ASSERT_EQ(Ip("link set lo up"), 0);
  for (int i = 0; i < 2; ++i) {
    Status s = PolicyRouting::Ensure({}, AF_INET6);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  std::string rules = IpOut("-6 rule show");
  const std::string want_rule = "100:\tfrom all fwmark 0x200/0xf00 lookup 100";
  auto first = rules.find(want_rule);
  ASSERT_NE(first, std::string::npos) << rules;
  EXPECT_EQ(rules.find(want_rule, first + 1), std::string::npos) << "duplicate rule:\n" << rules;
  EXPECT_EQ(IpOut("rule show").find("fwmark 0x200"), std::string::npos) << "IPv4 untouched";
  EXPECT_NE(IpOut("-6 route show table 100").find("local default dev lo"), std::string::npos);

  Status s = PolicyRouting::Remove({}, AF_INET6);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(IpOut("-6 rule show").find("fwmark 0x200"), std::string::npos);
  EXPECT_EQ(IpOut("-6 route show table 100").find("local"), std::string::npos);
  EXPECT_FALSE(PolicyRouting::Ensure({}, AF_UNIX).ok());  // neither family: a clear error
}

// Captured packets (0x200) skip conntrack on the way in, the proxy's own (0x300, its sockets' SO_MARK) on the way out.
TEST_F(NetlinkTest, ConntrackBypassHasBothDirectionsAndIsRemovable) {
  for (int i = 0; i < 2; ++i) {
    Status s = ConntrackBypass::Ensure();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  std::string table = Nft("list table inet zeromesh");
  EXPECT_NE(table.find("hook prerouting priority raw"), std::string::npos) << table;
  EXPECT_NE(table.find("meta mark & 0x00000f00 == 0x00000200 notrack"), std::string::npos) << table;
  EXPECT_NE(table.find("hook output priority raw"), std::string::npos) << table;
  EXPECT_NE(table.find("meta mark & 0x00000f00 == 0x00000300 notrack"), std::string::npos) << table;
  auto first = table.find("notrack");
  EXPECT_EQ(table.find("notrack", table.find("notrack", first + 1) + 1), std::string::npos) << "rules doubled:\n"
                                                                                            << table;
  ASSERT_TRUE(ConntrackBypass::Remove().ok());
  EXPECT_NE(Nft("list table inet zeromesh").find("No such file"), std::string::npos);
  EXPECT_TRUE(ConntrackBypass::Remove().ok());
}

}  // namespace
}  // namespace zm::agent::bpf
