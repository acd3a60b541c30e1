// L7 routing config (issue 17, config half): protocol selection per Service port, HTTPRoute / GRPCRoute decoding in
// universal mode (good and bad manifests, exact errors), ReferenceGrants, digests, and the Kubernetes translation.
#include <gtest/gtest.h>

#include "controller/k8s/translate.h"
#include "controller/manifest/app_protocol.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/resource_digest.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;
using nlohmann::json;

manifest::Result DecodeOnly(const std::string& text) {
  manifest::Result r;
  manifest::DecodeText(text, "m.yaml", manifest::Limits{}, &r);
  return r;
}

manifest::Result Load(const std::string& text) {
  manifest::Result r = DecodeOnly(text);
  manifest::CheckSet(&r);
  return r;
}

std::string All(const manifest::Result& r) {
  std::string all;
  for (const auto& e : r.errors) all += e.file + ":" + std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

TEST(AppProtocol, AppProtocolThenPortName) {
  using manifest::ResolveAppProtocol;
  EXPECT_EQ(ResolveAppProtocol("http", ""), v1::APP_HTTP);
  EXPECT_EQ(ResolveAppProtocol("HTTP", "tcp-x"), v1::APP_HTTP);
  EXPECT_EQ(ResolveAppProtocol("kubernetes.io/h2c", ""), v1::APP_HTTP2);
  EXPECT_EQ(ResolveAppProtocol("http2", ""), v1::APP_HTTP2);
  EXPECT_EQ(ResolveAppProtocol("grpc", "web"), v1::APP_GRPC);
  // An appProtocol the mesh does not parse wins over the name: the owner said what the port speaks.
  EXPECT_EQ(ResolveAppProtocol("https", "http-web"), v1::APP_TCP);
  EXPECT_EQ(ResolveAppProtocol("kubernetes.io/ws", "http"), v1::APP_TCP);
  EXPECT_EQ(ResolveAppProtocol("", "http"), v1::APP_HTTP);
  EXPECT_EQ(ResolveAppProtocol("", "http-web"), v1::APP_HTTP);
  EXPECT_EQ(ResolveAppProtocol("", "http2"), v1::APP_HTTP2);
  EXPECT_EQ(ResolveAppProtocol("", "http2-api"), v1::APP_HTTP2);
  EXPECT_EQ(ResolveAppProtocol("", "grpc"), v1::APP_GRPC);
  EXPECT_EQ(ResolveAppProtocol("", "grpc-api"), v1::APP_GRPC);
  EXPECT_EQ(ResolveAppProtocol("", "httpd"), v1::APP_TCP);
  EXPECT_EQ(ResolveAppProtocol("", "grpcx"), v1::APP_TCP);
  EXPECT_EQ(ResolveAppProtocol("", "web"), v1::APP_TCP);
  EXPECT_EQ(ResolveAppProtocol("", ""), v1::APP_TCP);
}

TEST(AppProtocol, ServiceManifestPorts) {
  auto r = Load(
      "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: s, namespace: shop}\n"
      "spec:\n  vip: 10.96.0.10\n  ports:\n  - {name: http-web, port: 80}\n  - {name: api, port: 81, appProtocol: "
      "grpc}\n"
      "  - {name: db, port: 5432}\n  - {name: h2, port: 82, appProtocol: kubernetes.io/h2c}\n");
  ASSERT_TRUE(r.ok()) << All(r);
  const auto& ports = r.resources[0].resource->service().ports();
  EXPECT_EQ(ports[0].resolved_protocol(), v1::APP_HTTP);
  EXPECT_EQ(ports[0].app_protocol(), "");
  EXPECT_EQ(ports[1].resolved_protocol(), v1::APP_GRPC);
  EXPECT_EQ(ports[1].app_protocol(), "grpc");
  EXPECT_EQ(ports[2].resolved_protocol(), v1::APP_TCP);
  EXPECT_EQ(ports[3].resolved_protocol(), v1::APP_HTTP2);

  auto bad = Load(
      "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: s, namespace: shop}\n"
      "spec:\n  ports:\n  - {port: 80, appProtocol: \"h t t p\"}\n");
  ASSERT_EQ(bad.errors.size(), 1u) << All(bad);
  EXPECT_EQ(bad.errors[0].line, 6);
  EXPECT_EQ(bad.errors[0].reason,
            "'spec.ports[0].appProtocol': 'h t t p' is not a protocol name (letters, digits, '-', '.', '_' and '/')");
}

const std::string kServices =
    "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: front, namespace: shop}\n"
    "spec: {vip: 10.96.0.10, ports: [{name: http, port: 80}, {name: grpc, port: 9000}]}\n"
    "---\napiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: v2, namespace: shop}\n"
    "spec: {vip: 10.96.0.11, ports: [{name: http, port: 80}, {name: grpc, port: 9000}]}\n"
    "---\napiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: db, namespace: data}\n"
    "spec: {vip: 10.96.0.12, ports: [{name: http, port: 80}]}\n";

const std::string kHttpRoute = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: front, port: 80}]
  hostnames: [front.shop.svc.cluster.local]
  rules:
  - name: to-v2
    matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-canary, value: "1"}, {type: RegularExpression, name: x-user, value: "^(alice|bob)$"}]
      queryParams: [{name: debug, value: "on"}]
      method: GET
    - path: {value: /v1}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: canary}], add: [{name: x-seen, value: "1"}], remove: [x-debug]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [server]}
    - type: URLRewrite
      urlRewrite: {hostname: v2.shop, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: db, namespace: data, port: 80}, percent: 10}
    backendRefs: [{name: v2, port: 80, weight: 9}, {name: front, port: 80, weight: 1}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {attempts: 2, codes: [502, 503], backoff: 100ms}
  - matches: [{path: {type: RegularExpression, value: "/v[0-9]+/.*"}}]
    backendRefs: [{name: front, port: 80}]
)";

const std::string kGrpcRoute = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: front, port: 9000}]
  rules:
  - matches:
    - method: {service: shop.v1.Cart, method: Add}
      headers: [{name: x-canary, value: "1"}]
    - method: {type: RegularExpression, service: "shop\\.v1\\..*"}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: rpc}]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: front, port: 9000}, percent: 50}
    backendRefs: [{name: v2, port: 9000}]
)";

TEST(HttpRoute, DecodesEveryField) {
  std::string grant =
      "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: data}\n"
      "spec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]\n"
      "  to: [{group: \"\", kind: Service}]\n";
  auto r = Load(kServices + kHttpRoute + kGrpcRoute + grant);
  ASSERT_TRUE(r.ok()) << All(r);
  EXPECT_TRUE(r.notices.empty());
  ASSERT_EQ(r.resources.size(), 5u);
  const auto& h = r.resources[3].resource->http_route();
  EXPECT_EQ(manifest::KeyOf(r.resources[3].resource), "HTTPRoute/shop/canary");
  ASSERT_EQ(h.parent_refs_size(), 1);
  EXPECT_EQ(h.parent_refs(0).name(), "front");
  EXPECT_EQ(h.parent_refs(0).port(), 80u);
  EXPECT_EQ(h.hostnames(0), "front.shop.svc.cluster.local");
  ASSERT_EQ(h.rules_size(), 2);
  const auto& rule = h.rules(0);
  EXPECT_EQ(rule.name(), "to-v2");
  ASSERT_EQ(rule.matches_size(), 2);
  const auto& m = rule.matches(0);
  EXPECT_EQ(m.path().type(), v1::MATCH_PREFIX);
  EXPECT_EQ(m.path().value(), "/api");
  ASSERT_EQ(m.headers_size(), 2);
  EXPECT_EQ(m.headers(0).type(), v1::MATCH_EXACT);
  EXPECT_EQ(m.headers(1).type(), v1::MATCH_REGEX);
  EXPECT_EQ(m.headers(1).value(), "^(alice|bob)$");
  EXPECT_EQ(m.query_params(0).name(), "debug");
  EXPECT_EQ(m.method(), "GET");
  EXPECT_EQ(rule.matches(1).path().type(), v1::MATCH_PREFIX);  // Gateway API's default type
  EXPECT_EQ(h.rules(1).matches(0).path().type(), v1::MATCH_REGEX);
  ASSERT_EQ(rule.filters_size(), 4);
  EXPECT_EQ(rule.filters(0).request_header_modifier().set(0).name(), "x-route");
  EXPECT_EQ(rule.filters(0).request_header_modifier().add(0).value(), "1");
  EXPECT_EQ(rule.filters(0).request_header_modifier().remove(0), "x-debug");
  EXPECT_EQ(rule.filters(1).response_header_modifier().remove(0), "server");
  EXPECT_EQ(rule.filters(2).url_rewrite().hostname(), "v2.shop");
  EXPECT_EQ(rule.filters(2).url_rewrite().path_type(), v1::UrlRewrite::REPLACE_PREFIX_MATCH);
  EXPECT_EQ(rule.filters(2).url_rewrite().path(), "/v2");
  EXPECT_EQ(rule.filters(3).request_mirror().backend().namespace_(), "data");
  EXPECT_EQ(rule.filters(3).request_mirror().percent(), 10u);
  ASSERT_EQ(rule.backend_refs_size(), 2);
  EXPECT_EQ(rule.backend_refs(0).weight(), 9u);
  EXPECT_EQ(rule.backend_refs(0).namespace_(), "shop");
  EXPECT_EQ(rule.request_timeout_ms(), 10000u);
  EXPECT_EQ(rule.backend_request_timeout_ms(), 2000u);
  EXPECT_EQ(rule.retry().attempts(), 2u);
  EXPECT_EQ(rule.retry().codes_size(), 2);
  EXPECT_EQ(rule.retry().backoff_ms(), 100u);
  EXPECT_EQ(h.rules(1).backend_refs(0).weight(), 1u);  // Gateway API's default

  const auto& g = r.resources[4].resource->grpc_route();
  EXPECT_EQ(manifest::KeyOf(r.resources[4].resource), "GRPCRoute/shop/rpc");
  ASSERT_EQ(g.rules(0).matches_size(), 2);
  EXPECT_EQ(g.rules(0).matches(0).method().type(), v1::MATCH_EXACT);
  EXPECT_EQ(g.rules(0).matches(0).method().service(), "shop.v1.Cart");
  EXPECT_EQ(g.rules(0).matches(0).method().method(), "Add");
  EXPECT_EQ(g.rules(0).matches(0).headers(0).name(), "x-canary");
  EXPECT_EQ(g.rules(0).matches(1).method().type(), v1::MATCH_REGEX);
  EXPECT_EQ(g.rules(0).filters(0).request_header_modifier().set(0).value(), "rpc");
  ASSERT_EQ(g.rules(0).filters_size(), 2);  // a GRPCRoute's RequestMirror is kept, as an HTTPRoute's
  EXPECT_EQ(g.rules(0).filters(1).request_mirror().backend().name(), "front");
  EXPECT_EQ(g.rules(0).filters(1).request_mirror().backend().namespace_(), "shop");
  EXPECT_EQ(g.rules(0).filters(1).request_mirror().backend().port(), 9000u);
  EXPECT_EQ(g.rules(0).filters(1).request_mirror().percent(), 50u);
}

TEST(HttpRoute, ReferenceGrantsPerRouteKind) {
  auto grant = [](const std::string& kind) {
    return "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
           "metadata: {name: g, namespace: data}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: " +
           kind + ", namespace: shop}]\n  to: [{group: \"\", kind: Service}]\n";
  };
  // A grant for TCPRoutes does not let HTTPRoutes in: the mirror into data/ is left out, with a notice.
  auto r = Load(kServices + kHttpRoute + grant("TCPRoute"));
  ASSERT_TRUE(r.ok()) << All(r);
  ASSERT_EQ(r.notices.size(), 1u);
  EXPECT_EQ(r.notices[0].reason,
            "HTTPRoute shop/canary: backendRef data/db:80: not permitted (no ReferenceGrant in the backend's "
            "namespace lets HTTPRoutes from namespace shop refer to that Service); left out of the route's backends");
  EXPECT_EQ(r.resources[3].resource->http_route().rules(0).filters_size(), 3);
  auto ok = Load(kServices + kHttpRoute + grant("HTTPRoute"));
  ASSERT_TRUE(ok.ok()) << All(ok);
  EXPECT_TRUE(ok.notices.empty());
  EXPECT_EQ(ok.resources[3].resource->http_route().rules(0).filters_size(), 4);
}

TEST(HttpRoute, ReferencesMustResolve) {
  auto r = Load(kServices + R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: nope, port: 80}, {kind: Service, name: front, port: 81}]
  rules:
  - backendRefs: [{name: v2, port: 8080}]
)");
  EXPECT_EQ(All(r),
            "m.yaml:16: HTTPRoute shop/r: parentRef names no Service shop/nope\n"
            "m.yaml:16: HTTPRoute shop/r: parentRef port 81 is not a port of shop/front\n"
            "m.yaml:16: HTTPRoute shop/r: backendRef port 8080 is not a port of shop/v2\n");
}

TEST(HttpRoute, DigestsCoverTheNewKinds) {
  auto a = Load(kServices + kHttpRoute + kGrpcRoute);
  ASSERT_TRUE(a.ok()) << All(a);
  v1::Resource h = a.resources[3].resource, g = a.resources[4].resource;
  auto dh = manifest::ResourceDigest(h), dg = manifest::ResourceDigest(g);
  h.mutable_http_route()->mutable_rules(0)->mutable_retry()->set_attempts(3);
  g.mutable_grpc_route()->mutable_rules(0)->mutable_matches(0)->mutable_method()->set_method("Remove");
  EXPECT_NE(manifest::ResourceDigest(h), dh);
  EXPECT_NE(manifest::ResourceDigest(g), dg);
}

// One HTTPRoute whose spec.rules[0] is `rule` (lines 7 on); the errors of decoding it alone.
std::string HttpRuleErrors(const std::string& rule) {
  return All(DecodeOnly(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n"
      "  parentRefs: [{kind: Service, name: front, port: 80}]\n  rules:\n" +
      rule));
}

TEST(HttpRoute, BadManifestsSayWhereAndWhy) {
  const std::string ok_backends = "    backendRefs: [{name: front, port: 80}]\n";
  EXPECT_EQ(HttpRuleErrors("  - matches: [{path: {type: Prefix, value: /a}}]\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].matches[0].path.type' must be Exact, PathPrefix or RegularExpression, not "
            "'Prefix'\n");
  EXPECT_EQ(HttpRuleErrors("  - matches: [{path: {type: Exact, value: a}}]\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].matches[0].path.value': 'a' must start with '/'\n");
  EXPECT_EQ(HttpRuleErrors("  - matches: [{path: {type: RegularExpression, value: \"/(a\"}}]\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].matches[0].path.value': '/(a' is not a valid regular expression (RE2 syntax): "
            "missing ): /(a\n");
  EXPECT_EQ(HttpRuleErrors("  - matches:\n    - headers: [{type: RegularExpression, name: x, value: \"a**\"}]\n" +
                           ok_backends),
            "m.yaml:8: 'spec.rules[0].matches[0].headers[0].value': 'a**' is not a valid regular expression (RE2 "
            "syntax): bad repetition operator: **\n");
  EXPECT_EQ(HttpRuleErrors("  - matches: [{headers: [{name: \"x y\", value: a}]}]\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].matches[0].headers[0].name': 'x y' is not an HTTP header name\n");
  EXPECT_EQ(HttpRuleErrors("  - matches: [{method: FETCH}]\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].matches[0].method': 'FETCH' is not one of GET, HEAD, POST, PUT, DELETE, "
            "CONNECT, OPTIONS, TRACE, PATCH\n");
  EXPECT_EQ(HttpRuleErrors("  - matches: [{pathh: {value: /}}]\n" + ok_backends),
            "m.yaml:7: unknown field 'spec.rules[0].matches[0].pathh' (allowed: path, headers, queryParams, "
            "method)\n");
  EXPECT_EQ(HttpRuleErrors("  - filters: [{type: RequestRedirect}]\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].filters[0].type': 'RequestRedirect' is not supported (RequestHeaderModifier, "
            "ResponseHeaderModifier, URLRewrite or RequestMirror)\n");
  EXPECT_EQ(HttpRuleErrors("  - filters: [{type: RequestHeaderModifier}]\n" + ok_backends),
            "m.yaml:7: missing required field 'spec.rules[0].filters[0].requestHeaderModifier' (type "
            "RequestHeaderModifier)\n");
  EXPECT_EQ(HttpRuleErrors("  - filters:\n    - type: URLRewrite\n      urlRewrite: {path: {type: ReplacePrefixMatch, "
                           "replacePrefixMatch: /b}}\n" +
                           ok_backends),
            "m.yaml:8: 'spec.rules[0]': URLRewrite ReplacePrefixMatch needs every match of the rule to have a "
            "PathPrefix path\n");
  EXPECT_EQ(HttpRuleErrors("  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: "
                           "[{name: X-A, value: \"1\"}], remove: [x-a]}\n" +
                           ok_backends),
            "m.yaml:9: 'spec.rules[0].filters[0].requestHeaderModifier.remove': header 'x-a' is modified twice\n");
  EXPECT_EQ(HttpRuleErrors("  - timeouts: {request: 1s, backendRequest: 2s}\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].timeouts.backendRequest' must not exceed 'request'\n");
  EXPECT_EQ(HttpRuleErrors("  - timeouts: {request: 10}\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].timeouts.request': '10' is not a duration between 1ms and 1h (e.g. 500ms, "
            "2s)\n");
  EXPECT_EQ(HttpRuleErrors("  - retry: {attempts: 2, codes: [200]}\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].retry.codes[0]' = 200 is out of range [400, 599]\n");
  EXPECT_EQ(HttpRuleErrors("  - retry: {attempts: 11}\n" + ok_backends),
            "m.yaml:7: 'spec.rules[0].retry.attempts' = 11 is out of range [0, 10]\n");
  EXPECT_EQ(HttpRuleErrors("  - backendRefs: [{name: front, port: 80, weight: 0}]\n"),
            "m.yaml:7: 'spec.rules[0].backendRefs': at least one backend needs a weight above 0\n");
  EXPECT_EQ(HttpRuleErrors("  - matches: [{path: {value: /}}]\n"),
            "m.yaml:7: 'spec.rules[0].backendRefs' must be a non-empty list\n");
  std::string many;
  for (int i = 0; i < 17; ++i) many += "  - backendRefs: [{name: front, port: 80}]\n";
  EXPECT_EQ(HttpRuleErrors(many), "m.yaml:7: 'spec.rules' has 17 entries; at most 16 are allowed\n");
  std::string long_regex(1100, 'a');
  EXPECT_EQ(
      HttpRuleErrors("  - matches: [{path: {type: RegularExpression, value: " + long_regex + "}}]\n" + ok_backends),
      "m.yaml:7: 'spec.rules[0].matches[0].path.value': a regular expression of at most 1024 characters is "
      "allowed\n");
  // The wrong API version for the kind.
  auto v = DecodeOnly(
      "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\nmetadata: {name: r}\n"
      "spec: {parentRefs: [{kind: Service, name: s}], rules: [{backendRefs: [{name: s, port: 80}]}]}\n");
  EXPECT_EQ(All(v),
            "m.yaml:1: unsupported apiVersion 'gateway.networking.k8s.io/v1alpha2' for kind HTTPRoute (expected "
            "gateway.networking.k8s.io/v1)\n");
}

TEST(GrpcRoute, BadManifestsSayWhereAndWhy) {
  auto errors = [](const std::string& rule) {
    return All(DecodeOnly(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r, namespace: shop}\nspec:\n"
        "  parentRefs: [{kind: Service, name: front, port: 9000}]\n  rules:\n" +
        rule + "    backendRefs: [{name: front, port: 9000}]\n"));
  };
  EXPECT_EQ(errors("  - matches: [{method: {type: Exact}}]\n"),
            "m.yaml:7: 'spec.rules[0].matches[0].method' needs a service, a method or both\n");
  EXPECT_EQ(errors("  - matches: [{method: {service: \"shop/v1\"}}]\n"),
            "m.yaml:7: 'spec.rules[0].matches[0].method.service': 'shop/v1' is not a gRPC name\n");
  EXPECT_EQ(errors("  - matches: [{method: {type: RegularExpression, method: \"(\"}}]\n"),
            "m.yaml:7: 'spec.rules[0].matches[0].method.method': '(' is not a valid regular expression (RE2 "
            "syntax): missing ): (\n");
  EXPECT_EQ(errors("  - filters: [{type: URLRewrite, urlRewrite: {hostname: a}}]\n"),
            "m.yaml:7: 'spec.rules[0].filters[0].type': 'URLRewrite' is not supported (RequestHeaderModifier, "
            "ResponseHeaderModifier or RequestMirror)\n");
  EXPECT_EQ(errors("  - timeouts: {request: 1s}\n"),
            "m.yaml:7: unknown field 'spec.rules[0].timeouts' (allowed: name, matches, filters, backendRefs)\n");
}

// ---- Kubernetes -----------------------------------------------------------------------------------------------------

TEST(L7Translate, ServicePortsHttpRoutesAndGrpcRoutes) {
  k8s::Objects o;
  o.services["shop/front"] = {
      {"metadata", {{"namespace", "shop"}, {"name", "front"}}},
      {"spec",
       {{"clusterIP", "10.96.0.10"},
        {"ports", json::array({{{"name", "web"}, {"port", 80}, {"appProtocol", "kubernetes.io/h2c"}},
                               {{"name", "grpc-api"}, {"port", 9000}},
                               {{"name", "db"}, {"port", 5432}}})}}}};
  o.http_routes["shop/canary"] = {
      {"metadata", {{"namespace", "shop"}, {"name", "canary"}, {"generation", 3}}},
      {"spec",
       {{"parentRefs", json::array({{{"group", ""}, {"kind", "Service"}, {"name", "front"}, {"port", 80}}})},
        {"rules",
         json::array({{{"matches", json::array({{{"headers", json::array({{{"name", "x-canary"}, {"value", "1"}}})}}})},
                       {"backendRefs", json::array({{{"name", "front-v2"}, {"port", 80}},
                                                    {{"name", "db"}, {"namespace", "data"}, {"port", 80}}})}}})}}}};
  o.grpc_routes["shop/rpc"] = {
      {"metadata", {{"namespace", "shop"}, {"name", "rpc"}, {"generation", 1}}},
      {"spec",
       {{"parentRefs", json::array({{{"kind", "Service"}, {"name", "front"}, {"port", 9000}}})},
        {"rules", json::array({{{"matches", json::array({{{"method", {{"service", "shop.Cart"}}}}})},
                                {"backendRefs", json::array({{{"name", "front-v2"}, {"port", 9000}}})}}})}}}};
  o.grpc_routes["shop/bad"] = {
      {"metadata", {{"namespace", "shop"}, {"name", "bad"}, {"generation", 1}}},
      {"spec",
       {{"parentRefs", json::array({{{"kind", "Service"}, {"name", "front"}}})},
        {"rules",
         json::array({{{"matches", json::array({{{"method", {{"type", "RegularExpression"}, {"method", "("}}}}})},
                       {"backendRefs", json::array({{{"name", "front"}, {"port", 9000}}})}}})}}}};
  k8s::Translation t = k8s::Translate(o, {});
  std::map<std::string, v1::Resource> r;
  for (const auto& l : t.resources) r[manifest::KeyOf(l.resource)] = l.resource;
  ASSERT_TRUE(r.count("Service/shop/front"));
  const auto& ports = r["Service/shop/front"].service().ports();
  EXPECT_EQ(ports[0].app_protocol(), "kubernetes.io/h2c");
  EXPECT_EQ(ports[0].resolved_protocol(), v1::APP_HTTP2);
  EXPECT_EQ(ports[1].resolved_protocol(), v1::APP_GRPC);
  EXPECT_EQ(ports[2].resolved_protocol(), v1::APP_TCP);

  ASSERT_TRUE(r.count("HTTPRoute/shop/canary"));
  // No ReferenceGrant: the backend in data/ is left out, and the status says so.
  const auto& h = r["HTTPRoute/shop/canary"].http_route();
  ASSERT_EQ(h.rules(0).backend_refs_size(), 1);
  EXPECT_EQ(h.rules(0).matches(0).headers(0).name(), "x-canary");
  ASSERT_TRUE(r.count("GRPCRoute/shop/rpc"));
  EXPECT_EQ(r["GRPCRoute/shop/rpc"].grpc_route().rules(0).matches(0).method().service(), "shop.Cart");
  EXPECT_FALSE(r.count("GRPCRoute/shop/bad"));
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].file, "GRPCRoute/shop/bad");

  std::map<std::string, k8s::CrdStatus> st;
  for (const auto& s : t.statuses) st[s.resource + "/" + s.name] = s;
  ASSERT_EQ(st.size(), 3u);
  const auto& hs = st["httproutes/canary"];
  EXPECT_EQ(hs.api_prefix, k8s::kGatewayV1Prefix);
  EXPECT_TRUE(hs.accepted);
  json patch = k8s::StatusPatch(hs, "2026-03-01T00:00:00Z");
  const json& conds = patch["status"]["parents"][0]["conditions"];
  EXPECT_EQ(conds[0]["type"], "Accepted");
  EXPECT_EQ(conds[0]["observedGeneration"], 3);
  EXPECT_EQ(conds[1]["type"], "ResolvedRefs");
  EXPECT_EQ(conds[1]["reason"], "RefNotPermitted");
  EXPECT_NE(conds[1]["message"].get<std::string>().find("lets HTTPRoutes from namespace shop"), std::string::npos);
  EXPECT_TRUE(st["grpcroutes/rpc"].accepted);
  EXPECT_EQ(st["grpcroutes/rpc"].api_prefix, k8s::kGatewayV1Prefix);
  const auto& bad = st["grpcroutes/bad"];
  EXPECT_FALSE(bad.accepted);
  EXPECT_NE(bad.message.find("is not a valid regular expression"), std::string::npos) << bad.message;
  EXPECT_EQ(k8s::StatusPatch(bad, "2026-03-01T00:00:00Z")["status"]["parents"][0]["conditions"][0]["reason"],
            "UnsupportedValue");
}

}  // namespace
}  // namespace zm::test
