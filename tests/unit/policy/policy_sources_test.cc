// How a TrafficPermission's sources match a connection: identities, namespaces, workload selectors, ip blocks, and
// what a plaintext (identity-less) peer can match.
#include "policy_fixture.h"

namespace zm::agent::policy::testing {
namespace {

TEST_F(PolicyTest, AllowByExactIdentity) {
  Use({Mesh(), Perm("shop", "allow-front", v1::ALLOW)
                   .Identity("spiffe://cluster.local/ns/shop/sa/frontend")
                   .To({{"app", "backend"}})});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, "shop/allow-front");
  EXPECT_EQ(d.reason, "allowed by TrafficPermission shop/allow-front");

  // Same namespace and service account in another trust domain is another identity.
  tls::SpiffeId foreign = Id("shop", "frontend", "other.domain");
  EXPECT_FALSE(Decide(&foreign, "10.244.1.11", backend_).allow);
  EXPECT_FALSE(Decide(&db_id_, "10.244.2.11", backend_).allow);
}

TEST_F(PolicyTest, UnspecifiedActionMeansAllow) {
  Use({Mesh(v1::DENY), Perm("shop", "p", v1::ACTION_UNSPECIFIED).Namespace("other")});
  auto d = Decide(&client_id_, "10.244.2.13", backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, "shop/p");
}

TEST_F(PolicyTest, AllowByNamespace) {
  Use({Mesh(), Perm("shop", "from-other", v1::ALLOW).Namespace("other").To({{"app", "backend"}})});
  auto d = Decide(&client_id_, "10.244.2.13", backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, "shop/from-other");
  // The namespace comes from the verified identity, not from where the IP lives.
  EXPECT_FALSE(Decide(&frontend_id_, "10.244.2.13", backend_).allow);
  EXPECT_FALSE(Decide(nullptr, "10.244.2.13", backend_).allow);
}

TEST_F(PolicyTest, AllowByWorkloadSelectorInPolicyNamespace) {
  Use({Mesh(), Perm("shop", "front-sel", v1::ALLOW).FromSelector({{"app", "frontend"}}).To({{"app", "backend"}})});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, "shop/front-sel");
  // The right identity from an IP that is not a selected workload.
  EXPECT_FALSE(Decide(&frontend_id_, "10.244.2.11", backend_).allow);
  // A selected workload's IP with another workload's identity: the IP alone proves nothing.
  EXPECT_FALSE(Decide(&db_id_, "10.244.1.11", backend_).allow);
  // The selected workload's identity under a foreign trust domain.
  tls::SpiffeId foreign = Id("shop", "frontend", "other.domain");
  EXPECT_FALSE(Decide(&foreign, "10.244.1.11", backend_).allow);
}

TEST_F(PolicyTest, WorkloadSelectorNamespaceScoping) {
  // app=backend without a namespace means the policy's namespace (shop): other/backend is not a source.
  Use({Mesh(), Perm("shop", "from-backends", v1::ALLOW).FromSelector({{"app", "backend"}}).To({{"app", "db"}})});
  tls::SpiffeId shop_backend = Id("shop", "backend");
  tls::SpiffeId other_backend = Id("other", "backend");
  EXPECT_TRUE(Decide(&shop_backend, "10.244.1.12", db_).allow);
  EXPECT_FALSE(Decide(&other_backend, "10.244.2.12", db_).allow);

  // With an explicit namespace the selector looks there instead.
  Use({Mesh(), Perm("shop", "from-client", v1::ALLOW).FromSelector({{"app", "client"}}, "other").To({{"app", "db"}})});
  EXPECT_TRUE(Decide(&client_id_, "10.244.2.13", db_).allow);
  EXPECT_FALSE(Decide(&shop_backend, "10.244.1.12", db_).allow);
}

TEST_F(PolicyTest, AllowByIpBlock) {
  Use({Mesh(), Perm("shop", "lb", v1::ALLOW).IpBlock("10.99.0.0/16").To({{"app", "backend"}})});
  auto d = Decide(nullptr, "10.99.3.4", backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, "shop/lb");
  // An mTLS peer inside the block matches as well: the block is about the address only.
  EXPECT_TRUE(Decide(&client_id_, "10.99.200.1", backend_).allow);
  EXPECT_FALSE(Decide(nullptr, "10.98.0.1", backend_).allow);
  EXPECT_FALSE(Decide(nullptr, "10.100.0.1", backend_).allow);
}

TEST_F(PolicyTest, PlaintextMatchedOnlyByIpBlocks) {
  Use({Mesh(), Perm("shop", "front", v1::ALLOW)
                   .Identity("spiffe://cluster.local/ns/shop/sa/frontend")
                   .Namespace("shop")
                   .FromSelector({{"app", "frontend"}})
                   .To({{"app", "backend"}})});
  // From the frontend's own IP, but without a certificate: none of identity/namespace/selector may match.
  auto d = Decide(nullptr, "10.244.1.11", backend_);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.policy, kImplicitDenyPolicy);
  EXPECT_EQ(d.reason, "no TrafficPermission allows plaintext 10.244.1.11 to shop/backend:80");

  Use({Mesh(), Perm("shop", "front", v1::ALLOW).Namespace("shop").IpBlock("10.244.1.11/32").To({{"app", "backend"}})});
  EXPECT_TRUE(Decide(nullptr, "10.244.1.11", backend_).allow);
  EXPECT_FALSE(Decide(nullptr, "10.244.1.10", backend_).allow);
}

TEST_F(PolicyTest, PolicyWithoutSourcesMatchesEverySource) {
  Use({Mesh(), Perm("shop", "lockdown", v1::DENY).To({{"app", "db"}})});
  for (const tls::SpiffeId* src : {&frontend_id_, &client_id_, static_cast<const tls::SpiffeId*>(nullptr)}) {
    auto d = Decide(src, "10.1.2.3", db_);
    EXPECT_FALSE(d.allow);
    EXPECT_EQ(d.policy, "shop/lockdown");
  }
  EXPECT_TRUE(Decide(nullptr, "10.1.2.3", backend_).allow);
}

TEST_F(PolicyTest, SelectorMatchingNoWorkloadMatchesNoSource) {
  // A source list that resolves to nothing is not "no sources": it must not turn into match-all.
  Use({Mesh(), Perm("shop", "ghosts", v1::DENY).FromSelector({{"app", "ghost"}}).To({{"app", "db"}})});
  EXPECT_TRUE(Decide(&frontend_id_, "10.244.1.11", db_).allow);
  EXPECT_EQ(Decide(&frontend_id_, "10.244.1.11", db_).policy, kMeshDefaultPolicy);
}

TEST_F(PolicyTest, Ipv6BlocksMatchIpv6SourcesOnly) {
  Use({Mesh(), Perm("shop", "lb6", v1::ALLOW).IpBlock("fd00:99::/64").To({{"app", "backend"}})});
  auto d = Decide(nullptr, "fd00:99::3:4", backend_);
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.policy, "shop/lb6");
  EXPECT_FALSE(Decide(nullptr, "fd00:98::1", backend_).allow);
  EXPECT_FALSE(Decide(nullptr, "10.99.0.1", backend_).allow);  // a block never matches the other family
  // The refusal names the IPv6 source in its RFC 5952 form.
  EXPECT_EQ(Decide(nullptr, "fd00:98:0:0::1", backend_).reason,
            "no TrafficPermission allows plaintext fd00:98::1 to shop/backend:80");

  Use({Mesh(), Perm("shop", "lb4", v1::ALLOW).IpBlock("0.0.0.0/0").To({{"app", "backend"}})});
  EXPECT_FALSE(Decide(nullptr, "fd00:99::3:4", backend_).allow);
}

// A dual-stack pod is one workload with two addresses: a selector picks it from either, and the destination's
// policies apply whichever of its addresses was dialled.
TEST_F(PolicyTest, DualStackWorkloadsMatchFromEitherAddress) {
  v1::Resource web = MeshWorkload("shop", "web", "web", "10.244.1.20", {{"app", "web"}});
  web.mutable_workload()->add_ips("10.244.1.20");
  web.mutable_workload()->add_ips("fd00:10:244:1::14");
  v1::Resource api = MeshWorkload("shop", "api", "api", "fd00:10:244:2::15", {{"app", "api"}});  // IPv6 primary
  api.mutable_workload()->add_ips("10.244.2.21");
  Use({Mesh(v1::DENY), web, api,
       Perm("shop", "web-to-api", v1::ALLOW).FromSelector({{"app", "web"}}).To({{"app", "api"}})});
  Workload api_dest = Dest("shop", "api", "fd00:10:244:2::15");
  api_dest.ips.push_back(Ip("10.244.2.21"));
  tls::SpiffeId web_id = Id("shop", "web");
  EXPECT_TRUE(Decide(&web_id, "fd00:10:244:1::14", api_dest).allow);
  EXPECT_TRUE(Decide(&web_id, "10.244.1.20", api_dest).allow);
  EXPECT_FALSE(Decide(&web_id, "fd00:10:244:1::15", api_dest).allow);        // not one of web's addresses
  EXPECT_FALSE(Decide(&frontend_id_, "fd00:10:244:1::14", api_dest).allow);  // web's address, another identity
}

}  // namespace
}  // namespace zm::agent::policy::testing
