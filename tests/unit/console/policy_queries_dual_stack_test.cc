// "Can A reach B?" in a dual-stack mesh: a workload is found by any of its addresses, an IPv6 client outside the mesh
// is judged by IPv6 ipBlocks, and an IPv6-only pod's "plaintext" verdict is asked with an IPv6 client.
#include <gtest/gtest.h>

#include "controller/console/policy_queries.h"
#include "tests/unit/console/mesh_fixture.h"

namespace zm::ctrl::console {
namespace {

using testing::AddWorkload;
using testing::SmallMesh;

// shop/open (dual-stack) and shop/six (IPv6-only), PERMISSIVE; plaintext from 2001:db8::/32 is denied to both.
MeshInputs DualStackMesh() {
  MeshInputs in = SmallMesh();
  auto* open = AddWorkload(in.resources, "shop", "open", "10.1.0.7", true, "open");
  open->add_ips("10.1.0.7");
  open->add_ips("fd00::7");
  open->set_mode(zeromesh::v1::PERMISSIVE);
  auto* six = AddWorkload(in.resources, "shop", "six", "fd00::8", true, "open");
  six->set_mode(zeromesh::v1::PERMISSIVE);
  auto* p = in.resources.add_resources()->mutable_traffic_permission();
  p->set_namespace_("shop");
  p->set_name("no-docs-net");
  p->set_action(zeromesh::v1::DENY);
  p->mutable_sources()->add_ip_blocks("2001:db8::/32");
  (*p->mutable_destination()->mutable_selector()->mutable_match_labels())["app"] = "open";
  return in;
}

TEST(PolicyQueriesDualStack, AWorkloadIsFoundByItsIpv6Address) {
  std::string error;
  auto q = PolicyQueries::Build(DualStackMesh().resources, &error);
  ASSERT_TRUE(q) << error;
  auto r = q->Reach("fd00::7", "shop/backend-v1", 0, &error);
  ASSERT_FALSE(r.is_null()) << error;
  EXPECT_TRUE(r["mtls"].get<bool>()) << r.dump();
  EXPECT_EQ(r["source_identity"], "spiffe://cluster.local/ns/shop/sa/open");
  EXPECT_TRUE(q->Reach("FD00::7", "shop/backend-v1", 0, &error)["mtls"].get<bool>());  // any spelling of it
}

TEST(PolicyQueriesDualStack, Ipv6ClientsOutsideTheMeshMeetIpv6Blocks) {
  std::string error;
  auto q = PolicyQueries::Build(DualStackMesh().resources, &error);
  ASSERT_TRUE(q) << error;
  auto denied = q->Reach("2001:db8::5", "shop/open", 0, &error);
  ASSERT_FALSE(denied.is_null()) << error;
  EXPECT_FALSE(denied["mtls"].get<bool>());
  EXPECT_FALSE(denied["allow"].get<bool>()) << denied.dump();
  EXPECT_NE(denied["policy"].get<std::string>().find("no-docs-net"), std::string::npos) << denied.dump();
  EXPECT_TRUE(q->Reach("2001:db9::5", "shop/open", 0, &error)["allow"].get<bool>());
  EXPECT_TRUE(q->Reach("192.0.2.5", "shop/open", 0, &error)["allow"].get<bool>());  // an IPv6 block: not IPv4
  EXPECT_TRUE(q->Reach("fd00::zz", "shop/open", 0, &error).is_null());
  EXPECT_NE(error.find("an IPv4 or IPv6 address"), std::string::npos) << error;
}

TEST(PolicyQueriesDualStack, PlaintextVerdictOfAnIpv6OnlyPodIsAskedOverIpv6) {
  std::string error;
  auto q = PolicyQueries::Build(DualStackMesh().resources, &error);
  ASSERT_TRUE(q) << error;
  // The stand-in client outside the mesh is 2001:db8::1 for the IPv6-only pod (denied by the block), 192.0.2.1 for
  // the dual-stack one (allowed).
  EXPECT_FALSE(q->Who("shop/six", 0, &error)["plaintext"]["allow"].get<bool>());
  EXPECT_TRUE(q->Who("shop/open", 0, &error)["plaintext"]["allow"].get<bool>());
}

}  // namespace
}  // namespace zm::ctrl::console
