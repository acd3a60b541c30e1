// meshctl's workload and service views of a dual-stack mesh: every address listed (JSON and table), address columns
// never cut short to fit 100 columns.
#include <gtest/gtest.h>

#include <sstream>

#include "tools/meshctl/output.h"
#include "tools/meshctl/views.h"

namespace zm::meshctl {
namespace {

zeromesh::v1::ResourceSet Mesh() {
  zeromesh::v1::ResourceSet rs;
  auto* w = rs.add_resources()->mutable_workload();
  w->set_namespace_("shop-production");
  w->set_name("checkout-7d9f8b6c5-x2x4q");
  w->set_node("worker-node-01");
  w->set_service_account("checkout-service-account");
  w->set_ip("10.244.1.11");
  w->add_ips("10.244.1.11");
  w->add_ips("fd00:10:244:1::b");
  w->set_enrolled(true);
  auto* six = rs.add_resources()->mutable_workload();
  six->set_namespace_("shop-production");
  six->set_name("six");
  six->set_node("worker-node-02");
  six->set_ip("fd00:10:244:2::c");
  auto* s = rs.add_resources()->mutable_service();
  s->set_namespace_("shop-production");
  s->set_name("checkout");
  s->set_vip("10.96.0.10");
  s->add_vips("10.96.0.10");
  s->add_vips("fd00:96::a");
  auto* p = s->add_ports();
  p->set_port(80);
  p->set_target_port(8080);
  for (const char* ip : {"10.244.1.11", "fd00:10:244:1::b", "fd00:10:244:2::c", "10.244.3.40", "fd00:10:244:3::28"}) {
    s->add_endpoints()->set_ip(ip);
  }
  return rs;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(MeshctlDualStack, WorkloadsListEveryAddress) {
  auto j = WorkloadsJson(Mesh());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["ip"], "10.244.1.11");
  EXPECT_EQ(j[0]["ips"], nlohmann::json({"10.244.1.11", "fd00:10:244:1::b"}));
  EXPECT_EQ(j[1]["ips"], nlohmann::json({"fd00:10:244:2::c"}));  // one address: the list holds just ip
  const std::string table = RenderWorkloads(j);
  EXPECT_NE(table.find("10.244.1.11,fd00:10:244:1::b"), std::string::npos) << table;
  EXPECT_NE(table.find("fd00:10:244:2::c"), std::string::npos) << table;
  for (const auto& line : Lines(table)) EXPECT_LE(line.size(), kMaxWidth) << table;
  // JSON from an older meshctl view (no "ips") still renders.
  j[1].erase("ips");
  EXPECT_NE(RenderWorkloads(j).find("fd00:10:244:2::c"), std::string::npos);
}

TEST(MeshctlDualStack, ServicesListEveryVipAndEndpoint) {
  auto j = ServicesJson(Mesh());
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["vips"], nlohmann::json({"10.96.0.10", "fd00:96::a"}));
  const std::string table = RenderServices(j);
  EXPECT_NE(table.find("10.96.0.10,fd00:96::a"), std::string::npos) << table;  // kept whole
  EXPECT_NE(table.find("fd00:10:244:1::b"), std::string::npos) << table;
  for (const auto& line : Lines(table)) EXPECT_LE(line.size(), kMaxWidth) << table;
}

TEST(MeshctlDualStack, AColumnKeptWholeIsNeverShortened) {
  Table t({"NAME", "IP", "NOTE"});
  t.KeepWhole(1);
  t.Add({std::string(40, 'n'), "10.244.1.11,fd00:10:244:1::b", std::string(60, 'x')});
  std::string out = t.Render(80);
  EXPECT_NE(out.find("10.244.1.11,fd00:10:244:1::b"), std::string::npos) << out;
  for (const auto& line : Lines(out)) EXPECT_LE(line.size(), 80u) << out;
  // Without it the widest columns give way in turn, the address too.
  Table plain({"NAME", "IP", "NOTE"});
  plain.Add({std::string(40, 'n'), "10.244.1.11,fd00:10:244:1::b", std::string(60, 'x')});
  EXPECT_EQ(plain.Render(60).find("10.244.1.11,fd00:10:244:1::b"), std::string::npos);
}

}  // namespace
}  // namespace zm::meshctl
