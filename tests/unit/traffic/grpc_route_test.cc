// Per-request GRPCRoute matching on HTTP/2 requests (the gRPC path, service and method Exact / RegularExpression,
// headers, Gateway API precedence) and the conversion of GrpcRoute resources into the agent's Services.
#include <gtest/gtest.h>

#include "agent/control/service_adapter.h"
#include "agent/traffic/grpc_match.h"

namespace zm::traffic {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using agent::HttpMatchType;

agent::HttpRouteMatch Method(HttpMatchType t, std::string service, std::string method) {
  agent::HttpRouteMatch m;
  m.has_grpc_method = true;
  m.grpc_method.type = t;
  m.grpc_method.service = std::move(service);
  m.grpc_method.method = std::move(method);
  if (t == HttpMatchType::kRegex) {
    if (!m.grpc_method.service.empty()) {
      m.grpc_method.service_regex = std::make_shared<const re2::RE2>(m.grpc_method.service, re2::RE2::Quiet);
    }
    if (!m.grpc_method.method.empty()) {
      m.grpc_method.method_regex = std::make_shared<const re2::RE2>(m.grpc_method.method, re2::RE2::Quiet);
    }
  }
  return m;
}

agent::HttpRouteRule Rule(std::string key, std::vector<agent::HttpRouteMatch> matches) {
  agent::HttpRouteRule r;
  r.key = std::move(key);
  r.matches = std::move(matches);
  return r;
}

std::string Match(const std::vector<agent::HttpRouteRule>& rules, std::string_view path, const Headers& headers = {}) {
  std::vector<const agent::HttpRouteRule*> ptrs;
  for (const auto& r : rules) ptrs.push_back(&r);
  const agent::HttpRouteRule* r = MatchGrpcRule(ptrs, path, &headers);
  return r == nullptr ? "none" : r->key;
}

TEST(GrpcMatch, ParsesServiceAndMethodFromThePath) {
  std::string_view svc, method;
  ASSERT_TRUE(ParseGrpcPath("/shop.Cart/Add", &svc, &method));
  EXPECT_EQ(svc, "shop.Cart");
  EXPECT_EQ(method, "Add");
  for (std::string_view bad : {"", "/", "/shop.Cart", "/shop.Cart/", "//Add", "/a/b/c", "shop.Cart/Add", "/a/b?x"}) {
    EXPECT_FALSE(ParseGrpcPath(bad, &svc, &method)) << bad;
  }
}

TEST(GrpcMatch, ExactServiceAndMethodBeatServiceOnlyBeatsMethodOnly) {
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("method-only", {Method(HttpMatchType::kExact, "", "Add")}));
  rules.push_back(Rule("service-only", {Method(HttpMatchType::kExact, "shop.Cart", "")}));
  rules.push_back(Rule("both", {Method(HttpMatchType::kExact, "shop.Cart", "Add")}));
  EXPECT_EQ(Match(rules, "/shop.Cart/Add"), "both");
  EXPECT_EQ(Match(rules, "/shop.Cart/Remove"), "service-only");
  EXPECT_EQ(Match(rules, "/shop.Orders/Add"), "method-only");
  EXPECT_EQ(Match(rules, "/shop.Orders/List"), "none");
  EXPECT_EQ(Match(rules, "/shop.Cart"), "none");  // not a gRPC call: no method match holds
}

TEST(GrpcMatch, RegexMatchesAreFullMatchesAndBadRegexesNeverMatch) {
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("regex", {Method(HttpMatchType::kRegex, "shop\\..*", "Get.*")}));
  rules.push_back(Rule("broken", {Method(HttpMatchType::kRegex, "(", "")}));
  EXPECT_EQ(Match(rules, "/shop.Cart/GetItems"), "regex");
  EXPECT_EQ(Match(rules, "/shop.Cart/ListItems"), "none");  // "Get.*" must match the whole method
  EXPECT_EQ(Match(rules, "/myshop.Cart/GetItems"), "none");
}

TEST(GrpcMatch, HeadersCountAfterServiceAndMethodAndEmptyRuleTakesEverything) {
  agent::HttpRouteMatch canary = Method(HttpMatchType::kExact, "shop.Cart", "");
  agent::HttpStringMatch h;
  h.name = "x-canary";
  h.value = "1";
  canary.headers.push_back(h);
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("all", {}));
  rules.push_back(Rule("cart", {Method(HttpMatchType::kExact, "shop.Cart", "")}));
  rules.push_back(Rule("cart-canary", {canary}));
  EXPECT_EQ(Match(rules, "/shop.Cart/Add", {{"x-canary", "1"}}), "cart-canary");
  EXPECT_EQ(Match(rules, "/shop.Cart/Add", {{"x-canary", "0"}}), "cart");
  EXPECT_EQ(Match(rules, "/other.Svc/Call"), "all");
  EXPECT_EQ(Match(rules, "/not/a/grpc/path"), "all");
}

TEST(GrpcRouting, GrpcRouteResourcesBecomeServiceGrpcRules) {
  namespace v1 = zeromesh::v1;
  agent::control::ConfigState state;
  v1::Resource svc;
  svc.mutable_service()->set_name("echo");
  svc.mutable_service()->set_namespace_("rpc");
  svc.mutable_service()->set_vip("10.96.0.40");
  auto* p = svc.mutable_service()->add_ports();
  p->set_port(80);
  p->set_target_port(50051);
  p->set_resolved_protocol(v1::APP_GRPC);
  state.resources["svc"] = svc;
  v1::Resource rt;
  auto* gr = rt.mutable_grpc_route();
  gr->set_name("echo");
  gr->set_namespace_("rpc");
  auto* parent = gr->add_parent_refs();
  parent->set_name("echo");
  parent->set_port(80);
  auto* rule = gr->add_rules();
  auto* m = rule->add_matches();
  m->mutable_method()->set_type(v1::MATCH_REGEX);
  m->mutable_method()->set_method("Can.*");
  auto* h = m->add_headers();
  h->set_name("X-Canary");
  h->set_value("1");
  auto* b = rule->add_backend_refs();
  b->set_name("echo-v2");
  b->set_port(80);
  b->set_weight(3);
  rule->add_filters()->mutable_response_header_modifier()->add_remove("server");
  auto* mirror = rule->add_filters()->mutable_request_mirror();  // as an HTTPRoute rule's
  mirror->mutable_backend()->set_name("echo-shadow");
  mirror->mutable_backend()->set_port(80);
  mirror->set_percent(30);
  auto* over = rule->add_filters()->mutable_request_mirror();
  over->mutable_backend()->set_name("audit");
  over->mutable_backend()->set_namespace_("ops");
  over->mutable_backend()->set_port(9000);
  over->set_percent(250);  // the controller caps it; the agent does too
  state.resources["rt"] = rt;
  std::vector<agent::Service> out;
  std::string error;
  ASSERT_TRUE(agent::control::ToServices(state, &out, &error)) << error;
  ASSERT_EQ(out.size(), 1u);
  const agent::Service& s = out[0];
  EXPECT_EQ(s.ports[0].protocol, agent::PortProtocol::kGrpc);
  EXPECT_TRUE(s.HttpRulesFor(80).empty());
  auto rules = s.GrpcRulesFor(80);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]->key, "rpc/echo#0");
  ASSERT_EQ(rules[0]->backends.size(), 1u);
  EXPECT_EQ(rules[0]->backends[0].ns, "rpc");
  EXPECT_EQ(rules[0]->backends[0].weight, 3u);
  EXPECT_EQ(rules[0]->response_headers.size(), 1u);
  ASSERT_EQ(rules[0]->mirrors.size(), 2u);
  EXPECT_EQ(rules[0]->mirrors[0].backend.ns, "rpc");  // the route's namespace by default
  EXPECT_EQ(rules[0]->mirrors[0].backend.name, "echo-shadow");
  EXPECT_EQ(rules[0]->mirrors[0].backend.port, 80);
  EXPECT_EQ(rules[0]->mirrors[0].percent, 30u);
  EXPECT_EQ(rules[0]->mirrors[1].backend.ns, "ops");
  EXPECT_EQ(rules[0]->mirrors[1].backend.port, 9000);
  EXPECT_EQ(rules[0]->mirrors[1].percent, 100u);
  Headers canary = {{"x-canary", "1"}};
  EXPECT_EQ(MatchGrpcRule(rules, "/zm.Echo/Canary", &canary), rules[0]);
  EXPECT_EQ(MatchGrpcRule(rules, "/zm.Echo/Who", &canary), nullptr);
  Headers none;
  EXPECT_EQ(MatchGrpcRule(rules, "/zm.Echo/Canary", &none), nullptr);  // header names compared lower case
  EXPECT_TRUE(s.GrpcRulesFor(81).empty());
}

}  // namespace
}  // namespace zm::traffic
