// Configs the compiler must refuse (a misread policy could open what it was meant to close). CIDR parsing itself is
// net::Cidr's (tests/unit/net).
#include <gtest/gtest.h>

#include "agent/policy/policy_set.h"
#include "config_builder.h"

namespace zm::agent::policy::testing {
namespace {

// Compiles and expects a refusal whose message contains `want`.
void ExpectRejected(std::initializer_list<v1::Resource> resources, const std::string& want) {
  std::string error;
  EXPECT_EQ(PolicySet::Compile(StateOf(resources), &error), nullptr);
  EXPECT_NE(error.find(want), std::string::npos) << "error: " << error;
}

TEST(PolicyCompile, AcceptsAWellFormedConfig) {
  std::string error;
  auto set = PolicySet::Compile(StateOf({Mesh(v1::DENY), MeshWorkload("shop", "a", "a", "10.0.0.1", {}),
                                         Perm("shop", "p", v1::ALLOW)
                                             .Identity("spiffe://cluster.local/ns/shop/sa/a")
                                             .IpBlock("10.0.0.0/8")
                                             .IpBlock("fd00::/8"),
                                         Perm("shop", "q", v1::DENY).Port(22)}),
                                &error);
  ASSERT_NE(set, nullptr) << error;
  EXPECT_EQ(set->policy_count(), 2u);
  EXPECT_FALSE(set->default_allow());
}

TEST(PolicyCompile, RejectsBadConfigs) {
  ExpectRejected({MeshWorkload("shop", "a", "a", "10.0.0.1", {})}, "no MeshConfig");
  ExpectRejected({Mesh(), MeshWorkload("shop", "a", "a", "10.0.0.300", {})}, "workload shop/a: bad IP");
  ExpectRejected({Mesh(), Perm("shop", "p", v1::ALLOW).IpBlock("10.0.0.0/33")}, "shop/p: '10.0.0.0/33'");
  ExpectRejected({Mesh(), Perm("shop", "p", v1::ALLOW).IpBlock("fd00::/129")}, "shop/p: 'fd00::/129'");
  ExpectRejected({Mesh(), Perm("shop", "p", v1::ALLOW).IpBlock("fd00::1::2/64")}, "shop/p: 'fd00::1::2/64'");
  ExpectRejected({Mesh(), Perm("shop", "p", v1::DENY).Identity("spiffe://cluster.local/ns/shop")},
                 "shop/p: identity 'spiffe://cluster.local/ns/shop'");
  ExpectRejected({Mesh(), Perm("shop", "p", v1::ALLOW).Port(0)}, "shop/p: destination port 0");
  ExpectRejected({Mesh(), Perm("shop", "p", v1::ALLOW).Port(65536)}, "shop/p: destination port 65536");
  ExpectRejected({Mesh(), Perm("", "p", v1::ALLOW)}, "needs a namespace");

  v1::Resource cross = Perm("shop", "p", v1::DENY);
  cross.mutable_traffic_permission()->mutable_destination()->mutable_selector()->set_namespace_("other");
  ExpectRejected({Mesh(), cross}, "shop/p: destination selector names namespace 'other'");

  v1::Resource bad_td = Mesh();
  bad_td.mutable_mesh_config()->set_trust_domain("Bad Domain");
  ExpectRejected({bad_td}, "MeshConfig trust domain");
}

}  // namespace
}  // namespace zm::agent::policy::testing
