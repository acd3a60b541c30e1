// Gateway API ReferenceGrant: the decision, universal-mode manifests, and the Kubernetes translation with its
// ResolvedRefs route status.
#include <gtest/gtest.h>

#include "controller/k8s/translate.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/reference_grant.h"

namespace zm::test {
namespace {
using nlohmann::json;

manifest::ReferenceGrant Grant(const std::string& ns, const std::string& from_ns, const std::string& to_name = "",
                               const std::string& from_kind = "TCPRoute", const std::string& to_kind = "Service") {
  manifest::ReferenceGrant g;
  g.name = "g";
  g.ns = ns;
  g.from.push_back({manifest::kGatewayGroup, from_kind, from_ns});
  g.to.push_back({"", to_kind, to_name});
  return g;
}

TEST(ReferenceGrant, Decision) {
  using manifest::BackendRefPermitted;
  // Same namespace: no grant needed.
  EXPECT_TRUE(BackendRefPermitted({}, "shop", "shop", "db"));
  EXPECT_TRUE(BackendRefPermitted({}, "shop", "", "db"));
  // Absent.
  EXPECT_FALSE(BackendRefPermitted({}, "shop", "data", "db"));
  // Present.
  EXPECT_TRUE(BackendRefPermitted({Grant("data", "shop")}, "shop", "data", "db"));
  // Wrong from-namespace, or the grant lives in the route's namespace instead of the backend's.
  EXPECT_FALSE(BackendRefPermitted({Grant("data", "other")}, "shop", "data", "db"));
  EXPECT_FALSE(BackendRefPermitted({Grant("shop", "shop")}, "shop", "data", "db"));
  // Name-restricted.
  EXPECT_TRUE(BackendRefPermitted({Grant("data", "shop", "db")}, "shop", "data", "db"));
  EXPECT_FALSE(BackendRefPermitted({Grant("data", "shop", "db")}, "shop", "data", "cache"));
  // Other kinds.
  EXPECT_FALSE(BackendRefPermitted({Grant("data", "shop", "", "HTTPRoute")}, "shop", "data", "db"));
  EXPECT_FALSE(BackendRefPermitted({Grant("data", "shop", "", "TCPRoute", "Secret")}, "shop", "data", "db"));
  auto wrong_group = Grant("data", "shop");
  wrong_group.from[0].group = "";
  EXPECT_FALSE(BackendRefPermitted({wrong_group}, "shop", "data", "db"));
  // Entries combine with OR, within one grant.
  auto multi = Grant("data", "other", "cache");
  multi.from.push_back({manifest::kGatewayGroup, "TCPRoute", "shop"});
  multi.to.push_back({"", "Service", "db"});
  EXPECT_TRUE(BackendRefPermitted({multi}, "shop", "data", "db"));
  EXPECT_TRUE(BackendRefPermitted({multi}, "shop", "data", "cache"));
}

const char* kServices =
    "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: front, namespace: shop}\n"
    "spec: {vip: 10.96.0.1, ports: [{port: 80}]}\n---\n"
    "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: local, namespace: shop}\n"
    "spec: {vip: 10.96.0.2, ports: [{port: 80}]}\n---\n"
    "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: db, namespace: data}\n"
    "spec: {vip: 10.96.0.3, ports: [{port: 80}]}\n---\n"
    "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r, namespace: shop}\n"
    "spec:\n  parentRefs: [{kind: Service, name: front, port: 80}]\n"
    "  rules:\n  - backendRefs: [{name: local, port: 80, weight: 1}, {name: db, namespace: data, port: 80, weight: "
    "3}]\n";

std::string GrantYaml(const std::string& from_ns, const std::string& to_extra = "") {
  return "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
         "metadata: {name: allow-shop, namespace: data}\n"
         "spec:\n  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: " +
         from_ns + "}]\n  to: [{group: \"\", kind: Service" + to_extra + "}]\n";
}

manifest::Result Load(const std::string& text) {
  manifest::Result r;
  manifest::DecodeText(text, "m.yaml", manifest::Limits{}, &r);
  manifest::CheckSet(&r);
  return r;
}

std::vector<std::string> Backends(const manifest::Result& r) {
  std::vector<std::string> out;
  for (const auto& l : r.resources) {
    if (!l.resource->has_tcp_route()) continue;
    for (const auto& b : l.resource->tcp_route().rules(0).backend_refs())
      out.push_back(b.namespace_() + "/" + b.name());
  }
  return out;
}

TEST(ReferenceGrant, UniversalModeManifests) {
  // Without a grant the set stays valid: the route keeps its own namespace's backend; the other is noted.
  auto none = Load(kServices);
  ASSERT_TRUE(none.ok()) << none.errors[0].reason;
  EXPECT_EQ(Backends(none), std::vector<std::string>({"shop/local"}));
  ASSERT_EQ(none.notices.size(), 1u);
  EXPECT_EQ(none.notices[0].line, 16);  // the TCPRoute document
  EXPECT_NE(none.notices[0].reason.find("TCPRoute shop/r: backendRef data/db:80: not permitted"), std::string::npos)
      << none.notices[0].reason;

  auto granted = Load(kServices + GrantYaml("shop"));
  ASSERT_TRUE(granted.ok()) << granted.errors[0].reason;
  EXPECT_EQ(Backends(granted), std::vector<std::string>({"shop/local", "data/db"}));
  EXPECT_TRUE(granted.notices.empty());
  EXPECT_EQ(Backends(Load(kServices + GrantYaml("other"))), std::vector<std::string>({"shop/local"}));
  EXPECT_EQ(Backends(Load(kServices + GrantYaml("shop", ", name: db"))),
            std::vector<std::string>({"shop/local", "data/db"}));
  EXPECT_EQ(Backends(Load(kServices + GrantYaml("shop", ", name: cache"))), std::vector<std::string>({"shop/local"}));
}

TEST(ReferenceGrant, DecodeErrors) {
  auto expect = [](const std::string& spec, const std::string& needle) {
    auto r = Load(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
        "metadata: {name: g, namespace: data}\nspec:\n" +
        spec);
    std::string all;
    for (const auto& e : r.errors) all += e.reason + "\n";
    EXPECT_NE(all.find(needle), std::string::npos) << "want: " << needle << "\n got: " << all;
    EXPECT_TRUE(r.grants.empty());
  };
  expect("  to: [{group: \"\", kind: Service}]\n", "missing required field 'spec.from'");
  expect("  from: []\n  to: [{group: \"\", kind: Service}]\n", "'spec.from' must be a list of 1 to 16 entries");
  expect(
      "  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: a.b}]\n"
      "  to: [{group: \"\", kind: Service}]\n",
      "'spec.from[0].namespace': invalid namespace 'a.b'");
  expect("  from: [{group: gateway.networking.k8s.io, kind: TCPRoute}]\n  to: [{group: \"\", kind: Service}]\n",
         "missing required field 'spec.from[0].namespace'");
  expect(
      "  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: shop}]\n"
      "  to: [{group: \"\", kind: Service, name: Bad_Name}]\n",
      "'spec.to[0].name': invalid name 'Bad_Name'");
  expect(
      "  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: shop}]\n"
      "  to: [{kind: Service, port: 80}]\n",
      "unknown field 'spec.to[0].port'");
  auto wrong_api = Load(
      "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: ReferenceGrant\n"
      "metadata: {name: g, namespace: data}\nspec: {from: [], to: []}\n");
  ASSERT_FALSE(wrong_api.ok());
  EXPECT_NE(wrong_api.errors[0].reason.find("expected gateway.networking.k8s.io/v1beta1"), std::string::npos);
}

// ---- Kubernetes
// ------------------------------------------------------------------------------------------------------

k8s::Objects Cluster() {
  k8s::Objects o;
  o.tcp_routes["shop/r"] = {
      {"metadata", {{"namespace", "shop"}, {"name", "r"}, {"generation", 2}}},
      {"spec",
       {{"parentRefs", json::array({{{"group", ""}, {"kind", "Service"}, {"name", "front"}, {"port", 80}}})},
        {"rules",
         json::array({{{"backendRefs",
                        json::array({{{"name", "local"}, {"port", 80}, {"weight", 1}},
                                     {{"name", "db"}, {"namespace", "data"}, {"port", 80}, {"weight", 3}}})}}})}}}};
  return o;
}

json GrantObject(const std::string& from_ns) {
  return {
      {"metadata", {{"namespace", "data"}, {"name", "allow"}}},
      {"spec",
       {{"from", json::array({{{"group", "gateway.networking.k8s.io"}, {"kind", "TCPRoute"}, {"namespace", from_ns}}})},
        {"to", json::array({{{"group", ""}, {"kind", "Service"}}})}}}};
}

struct RouteView {
  std::vector<std::string> backends;
  json conditions;
};

RouteView Translate(const k8s::Objects& o) {
  k8s::Translation t = k8s::Translate(o, {});
  RouteView v;
  for (const auto& l : t.resources) {
    if (!l.resource->has_tcp_route()) continue;
    for (const auto& b : l.resource->tcp_route().rules(0).backend_refs()) {
      v.backends.push_back(b.namespace_() + "/" + b.name());
    }
  }
  for (const auto& s : t.statuses) {
    if (s.resource == "tcproutes")
      v.conditions = k8s::StatusPatch(s, "2026-01-01T00:00:00Z")["status"]["parents"][0]["conditions"];
  }
  return v;
}

TEST(ReferenceGrant, KubernetesRouteStatusAndSplit) {
  auto o = Cluster();
  RouteView none = Translate(o);
  EXPECT_EQ(none.backends, std::vector<std::string>({"shop/local"}));
  ASSERT_EQ(none.conditions.size(), 2u) << none.conditions.dump();
  EXPECT_EQ(none.conditions[0]["type"], "Accepted");
  EXPECT_EQ(none.conditions[0]["status"], "True");
  EXPECT_EQ(none.conditions[1]["type"], "ResolvedRefs");
  EXPECT_EQ(none.conditions[1]["status"], "False");
  EXPECT_EQ(none.conditions[1]["reason"], "RefNotPermitted");
  EXPECT_EQ(none.conditions[1]["observedGeneration"], 2);
  EXPECT_NE(none.conditions[1]["message"].get<std::string>().find("data/db:80"), std::string::npos);

  o.reference_grants["data/allow"] = GrantObject("other");
  EXPECT_EQ(Translate(o).conditions[1]["reason"], "RefNotPermitted");

  o.reference_grants["data/allow"] = GrantObject("shop");
  RouteView granted = Translate(o);
  EXPECT_EQ(granted.backends, std::vector<std::string>({"shop/local", "data/db"}));
  EXPECT_EQ(granted.conditions[1]["status"], "True");
  EXPECT_EQ(granted.conditions[1]["reason"], "ResolvedRefs");

  // An invalid grant grants nothing and is reported.
  o.reference_grants["data/allow"]["spec"]["to"] = json::array();
  k8s::Translation t = k8s::Translate(o, {});
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].file, "ReferenceGrant/data/allow");
  EXPECT_EQ(Translate(o).backends, std::vector<std::string>({"shop/local"}));
}

TEST(ReferenceGrant, ResolvedRefsKeepsItsTransitionTime) {
  auto o = Cluster();
  k8s::Translation t = k8s::Translate(o, {});
  k8s::CrdStatus s = t.statuses.at(0);
  json patch = k8s::StatusPatch(s, "2026-01-01T00:00:00Z");
  s.current_status = patch["status"];
  EXPECT_TRUE(k8s::StatusUpToDate(s));
  s.refs_not_permitted.clear();  // the grant appeared: ResolvedRefs flips, Accepted keeps its time
  EXPECT_FALSE(k8s::StatusUpToDate(s));
  json conds = k8s::StatusPatch(s, "2026-02-01T00:00:00Z")["status"]["parents"][0]["conditions"];
  EXPECT_EQ(conds[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(conds[1]["lastTransitionTime"], "2026-02-01T00:00:00Z");
  EXPECT_EQ(conds[1]["status"], "True");
}

}  // namespace
}  // namespace zm::test
