// Evaluation order and destination selection: DENY before ALLOW, the implicit deny of ALLOW policies, the mesh
// default, ports, and namespace scoping of destinations.
#include "policy_fixture.h"

namespace zm::agent::policy::testing {
namespace {

TEST_F(PolicyTest, MeshDefaultAllowWhenUnspecified) {
  Use({Mesh()});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_);
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.policy, kMeshDefaultPolicy);
  EXPECT_EQ(d.reason,
            "no TrafficPermission matches spiffe://cluster.local/ns/shop/sa/frontend to shop/backend:80; "
            "mesh default is ALLOW");
  EXPECT_TRUE(set_->default_allow());
}

TEST_F(PolicyTest, MeshDefaultDeny) {
  Use({Mesh(v1::DENY)});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.policy, kMeshDefaultPolicy);
  EXPECT_NE(d.reason.find("mesh default is DENY"), std::string::npos) << d.reason;
  // An ALLOW policy opens a path through the default deny.
  Use({Mesh(v1::DENY), Perm("shop", "front", v1::ALLOW).Namespace("shop").To({{"app", "backend"}})});
  EXPECT_TRUE(Decide(&frontend_id_, "10.244.1.11", backend_).allow);
  EXPECT_FALSE(Decide(&frontend_id_, "10.244.1.11", db_).allow);
}

TEST_F(PolicyTest, DenyBeatsAllow) {
  // Named so that the ALLOW sorts first: the order comes from the action, not from resource names.
  Use({Mesh(), Perm("shop", "aa-allow-shop", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}),
       Perm("shop", "zz-deny-frontend", v1::DENY)
           .Identity("spiffe://cluster.local/ns/shop/sa/frontend")
           .To({{"app", "backend"}})});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.policy, "shop/zz-deny-frontend");
  EXPECT_EQ(d.reason, "denied by TrafficPermission shop/zz-deny-frontend");
  auto db = Decide(&db_id_, "10.244.2.11", backend_);
  EXPECT_TRUE(db.allow);
  EXPECT_EQ(db.policy, "shop/aa-allow-shop");
}

TEST_F(PolicyTest, AllowPolicyDeniesOthersForItsDestination) {
  Use({Mesh(), Perm("shop", "front-only", v1::ALLOW).Namespace("shop").To({{"app", "backend"}})});
  auto d = Decide(&client_id_, "10.244.2.13", backend_);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.policy, kImplicitDenyPolicy);
  EXPECT_EQ(d.reason, "no TrafficPermission allows spiffe://cluster.local/ns/other/sa/client to shop/backend:80");
  // Workloads the ALLOW policy does not select keep the mesh default.
  auto db = Decide(&client_id_, "10.244.2.13", db_);
  EXPECT_TRUE(db.allow);
  EXPECT_EQ(db.policy, kMeshDefaultPolicy);
}

TEST_F(PolicyTest, DenyPolicyAloneLeavesOthersToTheDefault) {
  Use({Mesh(), Perm("shop", "no-client", v1::DENY).Namespace("other").To({{"app", "backend"}})});
  EXPECT_FALSE(Decide(&client_id_, "10.244.2.13", backend_).allow);
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_);
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.policy, kMeshDefaultPolicy);
}

TEST_F(PolicyTest, PortFilters) {
  Use({Mesh(), Perm("shop", "api", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}).Port(8080).Port(8443),
       Perm("shop", "no-ssh", v1::DENY).To({{"app", "backend"}}).Port(22)});
  EXPECT_TRUE(Decide(&frontend_id_, "10.244.1.11", backend_, 8080).allow);
  EXPECT_TRUE(Decide(&frontend_id_, "10.244.1.11", backend_, 8443).allow);
  // The ALLOW policy covers 8080/8443 only: there it makes an allow-list ...
  auto other = Decide(&client_id_, "10.244.2.13", backend_, 8080);
  EXPECT_FALSE(other.allow);
  EXPECT_EQ(other.reason, "no TrafficPermission allows spiffe://cluster.local/ns/other/sa/client to shop/backend:8080");
  // ... while on other ports no ALLOW applies and the mesh default decides.
  auto p9090 = Decide(&client_id_, "10.244.2.13", backend_, 9090);
  EXPECT_TRUE(p9090.allow);
  EXPECT_EQ(p9090.policy, kMeshDefaultPolicy);
  auto ssh = Decide(&frontend_id_, "10.244.1.11", backend_, 22);
  EXPECT_FALSE(ssh.allow);
  EXPECT_EQ(ssh.policy, "shop/no-ssh");
}

TEST_F(PolicyTest, PolicyNeverSelectsWorkloadsOfAnotherNamespace) {
  // shop/backend and other/backend carry the same labels; an empty selector means every workload of shop only.
  Use({Mesh(), Perm("shop", "deny-backends", v1::DENY).To({{"app", "backend"}}),
       Perm("shop", "allow-all-in-shop", v1::ALLOW).Identity("spiffe://cluster.local/ns/shop/sa/db")});
  EXPECT_EQ(Decide(&client_id_, "10.244.2.13", backend_).policy, "shop/deny-backends");
  auto d = Decide(&client_id_, "10.244.2.13", other_backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, kMeshDefaultPolicy);
  // allow-all-in-shop turns every shop workload into an allow-list, none of other's.
  EXPECT_EQ(Decide(&client_id_, "10.244.2.13", db_).policy, kImplicitDenyPolicy);
  EXPECT_TRUE(Decide(&db_id_, "10.244.2.11", db_).allow);
}

TEST_F(PolicyTest, WorkloadsSharingAnIpKeepTheirOwnPolicies) {
  // Host-network pods share the node's IP; the request's workload decides which policies apply.
  control::ConfigState state =
      StateOf({Mesh(), MeshWorkload("a", "agent", "agent", "10.99.0.1", {}),
               MeshWorkload("b", "exporter", "exporter", "10.99.0.1", {}), Perm("a", "lock", v1::DENY)});
  std::string error;
  set_ = PolicySet::Compile(state, &error);
  ASSERT_NE(set_, nullptr) << error;
  Workload a = Dest("a", "agent", "10.99.0.1");
  Workload b = Dest("b", "exporter", "10.99.0.1");
  EXPECT_EQ(Decide(&client_id_, "10.244.2.13", a).policy, "a/lock");
  EXPECT_EQ(Decide(&client_id_, "10.244.2.13", b).policy, kMeshDefaultPolicy);
}

TEST_F(PolicyTest, UnknownDestinationGetsTheMeshDefault) {
  Use({Mesh(v1::DENY), Perm("shop", "all", v1::ALLOW).Namespace("shop")});
  Workload stranger = Dest("shop", "not-in-config", "10.244.9.9");
  EXPECT_EQ(Decide(&frontend_id_, "10.244.1.11", stranger).policy, kMeshDefaultPolicy);
  proxy::AuthzRequest req{.source = &frontend_id_, .source_ip = Ip("10.244.1.11"), .destination = nullptr, .port = 7};
  auto d = set_->Evaluate(req);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.policy, kMeshDefaultPolicy);
  EXPECT_NE(d.reason.find("a non-mesh destination:7"), std::string::npos) << d.reason;
}

}  // namespace
}  // namespace zm::agent::policy::testing
