#include "controller/console/policy_queries.h"

#include <gtest/gtest.h>

#include "controller/console/mesh_views.h"
#include "tests/unit/console/mesh_fixture.h"

namespace zm::ctrl::console {
namespace {

using testing::SmallMesh;

void DenyFrontend(MeshInputs& in) {
  auto* p = in.resources.add_resources()->mutable_traffic_permission();
  p->set_namespace_("shop");
  p->set_name("deny-frontend");
  p->set_action(zeromesh::v1::DENY);
  p->mutable_sources()->add_identities("spiffe://cluster.local/ns/shop/sa/frontend");
  (*p->mutable_destination()->mutable_selector()->mutable_match_labels())["app"] = "backend";
}

TEST(PolicyQueries, MeshClientsAreAllowedByTheMeshDefault) {
  std::string error;
  auto q = PolicyQueries::Build(SmallMesh().resources, &error);
  ASSERT_TRUE(q) << error;
  auto r = q->Reach("shop/frontend", "shop/backend-v1", 0, &error);
  ASSERT_FALSE(r.is_null()) << error;
  EXPECT_TRUE(r["allow"].get<bool>());
  EXPECT_TRUE(r["mtls"].get<bool>());
  EXPECT_EQ(r["source_identity"], "spiffe://cluster.local/ns/shop/sa/frontend");
  EXPECT_EQ(r["policy"], "mesh-default");
}

TEST(PolicyQueries, ADenyPolicyIsNamedWithItsReason) {
  MeshInputs in = SmallMesh();
  DenyFrontend(in);
  std::string error;
  auto q = PolicyQueries::Build(in.resources, &error);
  ASSERT_TRUE(q) << error;
  auto r = q->Reach("shop/frontend", "shop/backend-v2", 8080, &error);
  EXPECT_FALSE(r["allow"].get<bool>());
  EXPECT_NE(r["policy"].get<std::string>().find("deny-frontend"), std::string::npos) << r.dump();
  EXPECT_NE(r["reason"].get<std::string>().find("denied by TrafficPermission"), std::string::npos);
  // Another destination the policy does not select stays reachable.
  EXPECT_TRUE(q->Reach("shop/backend-v1", "shop/frontend", 0, &error)["allow"].get<bool>());
}

// A permission with http rules allows some requests only: the answer must not be a plain allow.
TEST(PolicyQueries, HttpRulesAreNamedNotPassedOffAsAPlainAllow) {
  MeshInputs in = SmallMesh();
  for (auto& r : *in.resources.mutable_resources()) {
    if (!r.has_service()) continue;
    for (auto& p : *r.mutable_service()->mutable_ports()) p.set_resolved_protocol(zeromesh::v1::APP_HTTP);
  }
  auto* p = in.resources.add_resources()->mutable_traffic_permission();
  p->set_namespace_("shop");
  p->set_name("frontend-get");
  p->set_action(zeromesh::v1::ALLOW);
  p->mutable_sources()->add_identities("spiffe://cluster.local/ns/shop/sa/frontend");
  (*p->mutable_destination()->mutable_selector()->mutable_match_labels())["app"] = "backend";
  p->add_http()->add_methods("GET");
  std::string error;
  auto q = PolicyQueries::Build(in.resources, &error);
  ASSERT_TRUE(q) << error;
  auto r = q->Reach("shop/frontend", "shop/backend-v1", 0, &error);
  ASSERT_FALSE(r.is_null()) << error;
  EXPECT_TRUE(r["http_rules"].get<bool>()) << r.dump();
  EXPECT_NE(r["reason"].get<std::string>().find("HTTP rules apply"), std::string::npos) << r.dump();
  EXPECT_NE(r["reason"].get<std::string>().find("shop/frontend-get"), std::string::npos) << r.dump();
  // Any other port of the workload is not HTTP: the permission allows nothing there.
  auto tcp = q->Reach("shop/frontend", "shop/backend-v1", 9999, &error);
  EXPECT_FALSE(tcp["allow"].get<bool>()) << tcp.dump();
}

TEST(PolicyQueries, PlaintextToStrictIsRefusedBeforeAnyPolicy) {
  std::string error;
  auto q = PolicyQueries::Build(SmallMesh().resources, &error);
  ASSERT_TRUE(q);
  auto r = q->Reach("legacy/legacy-client", "shop/backend-v1", 0, &error);
  EXPECT_FALSE(r["allow"].get<bool>());
  EXPECT_FALSE(r["mtls"].get<bool>());
  EXPECT_EQ(r["policy"], "strict-mode");
  // An address is a client outside the mesh unless a workload has it.
  EXPECT_FALSE(q->Reach("192.0.2.7", "shop/backend-v1", 0, &error)["allow"].get<bool>());
  EXPECT_TRUE(q->Reach("10.1.0.2", "shop/backend-v1", 0, &error)["mtls"].get<bool>());  // frontend's IP
  // A destination outside the mesh is reached directly.
  EXPECT_TRUE(q->Reach("shop/frontend", "legacy/legacy-client", 0, &error)["allow"].get<bool>());
}

TEST(PolicyQueries, WhoSplitsEveryWorkloadIntoAllowedAndDenied) {
  MeshInputs in = SmallMesh();
  DenyFrontend(in);
  std::string error;
  auto q = PolicyQueries::Build(in.resources, &error);
  ASSERT_TRUE(q);
  auto who = q->Who("shop/backend-v1", 0, &error);
  ASSERT_FALSE(who.is_null()) << error;
  EXPECT_EQ(who["port"], 8080);  // the Service's target port
  std::set<std::string> allowed, denied;
  for (const auto& a : who["allowed"]) allowed.insert(a["workload"]);
  for (const auto& d : who["denied"]) denied.insert(d["workload"]);
  EXPECT_EQ(allowed, (std::set<std::string>{"shop/backend-v2"}));
  EXPECT_EQ(denied, (std::set<std::string>{"shop/frontend", "legacy/legacy-client"}));
  EXPECT_FALSE(who["plaintext"]["allow"].get<bool>());
  auto eff = q->Effective();
  ASSERT_EQ(eff.size(), 3u);  // enrolled workloads only
}

TEST(PolicyQueries, UnknownNamesAreErrors) {
  std::string error;
  auto q = PolicyQueries::Build(SmallMesh().resources, &error);
  EXPECT_TRUE(q->Reach("shop/nobody", "shop/backend-v1", 0, &error).is_null());
  EXPECT_NE(error.find("shop/nobody"), std::string::npos);
  EXPECT_TRUE(q->Who("nope", 0, &error).is_null());
}

TEST(MeshViews, ServicesShowConfiguredAndMeasuredSplit) {
  auto j = ServicesView(SmallMesh());
  const nlohmann::json* backend = nullptr;
  for (const auto& s : j["services"]) {
    if (s["name"] == "backend") backend = &s;
  }
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ((*backend)["routes"].size(), 1u);
  const auto& b = (*backend)["routes"][0]["backends"];
  ASSERT_EQ(b.size(), 2u);
  EXPECT_DOUBLE_EQ(b[0]["percent"].get<double>(), 90.0);
  EXPECT_EQ(b[0]["measured_connections"], 95u);  // 91 from frontend + 4 plaintext
  EXPECT_EQ(b[1]["measured_connections"], 9u);
  EXPECT_NEAR(b[0]["measured_percent"].get<double>(), 100.0 * 95 / 104, 1e-9);
}

// HTTPRoutes attached to a Service are listed beside its TCPRoute split, rule by rule, and its ports say their
// protocol; the wizard's canary step keeps reading "routes" (TCPRoutes) only.
TEST(MeshViews, ServicesListTheirHttpRoutes) {
  MeshInputs in = SmallMesh();
  auto* route = in.resources.add_resources()->mutable_http_route();
  route->set_name("canary");
  route->set_namespace_("shop");
  route->add_parent_refs()->set_name("backend");
  auto* rule = route->add_rules();
  auto* h = rule->add_matches()->add_headers();
  h->set_name("x-canary");
  h->set_value("1");
  auto* b = rule->add_backend_refs();
  b->set_name("backend-v2");
  b->set_weight(1);
  auto j = ServicesView(in);
  for (const auto& s : j["services"]) {
    if (s["name"] != "backend") {
      EXPECT_TRUE(s["l7_routes"].empty()) << s.dump();
      continue;
    }
    EXPECT_EQ(s["routes"].size(), 1u);
    ASSERT_EQ(s["l7_routes"].size(), 1u);
    EXPECT_EQ(s["l7_routes"][0]["kind"], "HTTPRoute");
    EXPECT_EQ(s["l7_routes"][0]["rules"][0]["matches"][0], "x-canary=1");
    EXPECT_EQ(s["l7_routes"][0]["rules"][0]["backends"][0]["service"], "shop/backend-v2");
    EXPECT_EQ(s["ports"][0]["protocol"], "TCP");
  }
}

TEST(MeshViews, NamespacesCountEnrollment) {
  auto j = NamespacesView(SmallMesh());
  ASSERT_EQ(j["namespaces"].size(), 2u);
  EXPECT_EQ(j["namespaces"][0]["name"], "legacy");
  EXPECT_FALSE(j["namespaces"][0]["namespace_enrolled"].get<bool>());
  EXPECT_EQ(j["namespaces"][1]["mode"], "STRICT");
  EXPECT_TRUE(j["namespaces"][1]["namespace_enrolled"].get<bool>());
}

}  // namespace
}  // namespace zm::ctrl::console
