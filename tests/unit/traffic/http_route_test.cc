// Per-request HTTPRoute matching (path Exact / PathPrefix / RegularExpression, headers, query parameters, method,
// Gateway API precedence), the weighted backend choice per rule and per-request endpoint spread, and the conversion
// of HttpRoute resources and port protocols into the agent's Services.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>

#include "agent/control/service_adapter.h"
#include "agent/traffic/balancer.h"
#include "agent/traffic/http_match.h"
#include "agent/traffic/router.h"

namespace zm::traffic {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

agent::HttpStringMatch Str(agent::HttpMatchType t, std::string value, std::string name = "") {
  agent::HttpStringMatch m;
  m.type = t;
  m.name = std::move(name);
  m.value = std::move(value);
  if (t == agent::HttpMatchType::kRegex) m.regex = std::make_shared<const re2::RE2>(m.value, re2::RE2::Quiet);
  return m;
}

agent::HttpRouteMatch PathMatch(agent::HttpMatchType t, std::string value) {
  agent::HttpRouteMatch m;
  m.has_path = true;
  m.path = Str(t, std::move(value));
  return m;
}

agent::HttpRouteRule Rule(std::string key, std::vector<agent::HttpRouteMatch> matches) {
  agent::HttpRouteRule r;
  r.key = std::move(key);
  r.matches = std::move(matches);
  return r;
}

const agent::HttpRouteRule* Match(const std::vector<agent::HttpRouteRule>& rules, std::string_view method,
                                  std::string_view target, const Headers& headers = {}) {
  std::vector<const agent::HttpRouteRule*> ptrs;
  for (const auto& r : rules) ptrs.push_back(&r);
  HttpRequestView v;
  v.method = method;
  size_t q = target.find('?');
  v.path = target.substr(0, q);
  v.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  v.headers = &headers;
  return MatchHttpRule(ptrs, v);
}

TEST(HttpMatch, PathPrefixIsElementWise) {
  EXPECT_TRUE(PathPrefixMatches("/foo", "/foo"));
  EXPECT_TRUE(PathPrefixMatches("/foo", "/foo/bar"));
  EXPECT_TRUE(PathPrefixMatches("/foo/", "/foo/bar"));
  EXPECT_TRUE(PathPrefixMatches("/foo/", "/foo"));
  EXPECT_FALSE(PathPrefixMatches("/foo", "/foobar"));
  EXPECT_FALSE(PathPrefixMatches("/foo", "/fo"));
  EXPECT_TRUE(PathPrefixMatches("/", "/anything"));
}

TEST(HttpMatch, ExactBeatsLongerPrefixBeatsShorterPrefix) {
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("short", {PathMatch(agent::HttpMatchType::kPrefix, "/api")}));
  rules.push_back(Rule("long", {PathMatch(agent::HttpMatchType::kPrefix, "/api/v2")}));
  rules.push_back(Rule("exact", {PathMatch(agent::HttpMatchType::kExact, "/api/v2/status")}));
  EXPECT_EQ(Match(rules, "GET", "/api/v2/status")->key, "exact");
  EXPECT_EQ(Match(rules, "GET", "/api/v2/status/x")->key, "long");
  EXPECT_EQ(Match(rules, "GET", "/api/v1")->key, "short");
  EXPECT_EQ(Match(rules, "GET", "/other"), nullptr);
}

TEST(HttpMatch, HeadersQueryAndMethod) {
  agent::HttpRouteMatch canary;
  canary.headers.push_back(Str(agent::HttpMatchType::kExact, "1", "x-canary"));
  agent::HttpRouteMatch post;
  post.method = "POST";
  agent::HttpRouteMatch q;
  q.query_params.push_back(Str(agent::HttpMatchType::kRegex, "v[0-9]+", "ver"));
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("canary", {canary}));
  rules.push_back(Rule("post", {post}));
  rules.push_back(Rule("query", {q}));
  EXPECT_EQ(Match(rules, "GET", "/", {{"x-canary", "1"}})->key, "canary");
  EXPECT_EQ(Match(rules, "GET", "/", {{"x-canary", "2"}}), nullptr);
  EXPECT_EQ(Match(rules, "POST", "/x")->key, "post");
  // A method match ranks above header matches (Gateway API precedence).
  EXPECT_EQ(Match(rules, "POST", "/x", {{"x-canary", "1"}})->key, "post");
  EXPECT_EQ(Match(rules, "GET", "/x?a=b&ver=v12")->key, "query");
  EXPECT_EQ(Match(rules, "GET", "/x?ver=v12x"), nullptr);  // regexes match the whole value
  EXPECT_EQ(Match(rules, "GET", "/x?version=v1"), nullptr);
}

TEST(HttpMatch, MoreHeadersWinAndRuleWithoutMatchesTakesEverything) {
  agent::HttpRouteMatch one;
  one.headers.push_back(Str(agent::HttpMatchType::kExact, "a", "x-a"));
  agent::HttpRouteMatch two = one;
  two.headers.push_back(Str(agent::HttpMatchType::kRegex, "b+", "x-b"));
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("catchall", {}));
  rules.push_back(Rule("one", {one}));
  rules.push_back(Rule("two", {two}));
  EXPECT_EQ(Match(rules, "GET", "/", {{"x-a", "a"}, {"x-b", "bbb"}})->key, "two");
  EXPECT_EQ(Match(rules, "GET", "/", {{"x-a", "a"}})->key, "one");
  EXPECT_EQ(Match(rules, "GET", "/nothing")->key, "catchall");
}

TEST(HttpMatch, BadRegexNeverMatches) {
  std::vector<agent::HttpRouteRule> rules;
  rules.push_back(Rule("bad", {PathMatch(agent::HttpMatchType::kRegex, "(")}));
  EXPECT_EQ(Match(rules, "GET", "/("), nullptr);
}

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

agent::Service Svc(const std::string& name, const char* vip, std::vector<const char*> eps) {
  agent::Service s;
  s.name = name;
  s.ns = "shop";
  if (vip) s.vips = {Ip(vip)};
  s.ports = {{80, 8080, agent::PortProtocol::kHttp}};
  for (const char* ip : eps) s.endpoints.push_back({Ip(ip), "", "n1"});
  return s;
}

TEST(HttpRouting, WeightedRulePicksBackendsInProportionAndEndpointsPerRequest) {
  agent::Service parent = Svc("web", "10.96.0.10", {"10.0.0.1", "10.0.0.2"});
  agent::HttpRouting routing;
  routing.port = 80;
  auto rule = Rule("shop/split#0", {});
  rule.backends = {{"shop", "v1", 80, 3}, {"shop", "v2", 80, 1}};
  routing.rules.push_back(rule);
  parent.http_routes.push_back(routing);
  auto snap = std::make_shared<const agent::MeshSnapshot>(
      "cluster.local", "n1", agent::MeshMode::kStrict, std::vector<agent::Workload>{},
      std::vector<agent::Service>{parent, Svc("v1", nullptr, {"10.0.1.1", "10.0.1.2"}),
                                  Svc("v2", nullptr, {"10.0.2.1"})});
  Balancer lb;
  const agent::Service* vip = snap->FindService(Ip("10.96.0.10"));
  auto rules = vip->HttpRulesFor(80);
  ASSERT_EQ(rules.size(), 1u);
  std::map<std::string, int> backends;
  std::map<net::IpAddr, int> endpoints;
  for (int i = 0; i < 400; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteHttpRequest(lb, *snap, *vip, 80, rules[0], &r, &why), RouteStatus::kOk) << why;
    ++backends[r.service->name];
    ++endpoints[r.endpoint->ip];
    EXPECT_EQ(r.addr.port, 8080);
  }
  EXPECT_EQ(backends["v1"], 300);  // smooth weighted round robin: exact over any whole window
  EXPECT_EQ(backends["v2"], 100);
  EXPECT_EQ(endpoints[Ip("10.0.1.1")], 150);  // round robin within the backend, request by request
  EXPECT_EQ(endpoints[Ip("10.0.1.2")], 150);
}

TEST(HttpRouting, NoRuleMeansTheServiceItselfAndUnavailableBackendsAreSkipped) {
  agent::Service parent = Svc("web", "10.96.0.10", {"10.0.0.1", "10.0.0.2"});
  auto rule = Rule("shop/r#0", {});
  rule.backends = {{"shop", "gone", 80, 1}, {"shop", "web", 80, 1}};
  auto snap =
      std::make_shared<const agent::MeshSnapshot>("cluster.local", "n1", agent::MeshMode::kStrict,
                                                  std::vector<agent::Workload>{}, std::vector<agent::Service>{parent});
  Balancer lb;
  const agent::Service* vip = snap->FindService(Ip("10.96.0.10"));
  std::map<net::IpAddr, int> endpoints;
  for (int i = 0; i < 10; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteHttpRequest(lb, *snap, *vip, 80, nullptr, &r, &why), RouteStatus::kOk) << why;
    ++endpoints[r.endpoint->ip];
  }
  EXPECT_EQ(endpoints.size(), 2u);  // no rule: the parent's own endpoints, request by request
  for (int i = 0; i < 10; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteHttpRequest(lb, *snap, *vip, 80, &rule, &r, &why), RouteStatus::kOk) << why;
    EXPECT_EQ(r.service->name, "web");  // the backend without a Service never gets a request
  }
  auto only_gone = Rule("shop/r#1", {});
  only_gone.backends = {{"shop", "gone", 80, 1}};
  Route r;
  std::string why;
  EXPECT_EQ(RouteHttpRequest(lb, *snap, *vip, 80, &only_gone, &r, &why), RouteStatus::kNoEndpoint);
}

// A request no HTTPRoute rule matches follows the TCPRoute split on the port, request by request (the demo's 90/10
// canary beside its x-canary HTTPRoute).
TEST(HttpRouting, UnmatchedRequestsFollowTheTcpRouteSplit) {
  agent::Service parent = Svc("web", "10.96.0.10", {"10.0.0.1"});
  parent.splits.push_back({"shop/split", 80, {{"shop", "v1", 80, 9}, {"shop", "v2", 80, 1}}});
  auto snap = std::make_shared<const agent::MeshSnapshot>(
      "cluster.local", "n1", agent::MeshMode::kStrict, std::vector<agent::Workload>{},
      std::vector<agent::Service>{parent, Svc("v1", nullptr, {"10.0.1.1"}), Svc("v2", nullptr, {"10.0.2.1"})});
  Balancer lb;
  const agent::Service* vip = snap->FindService(Ip("10.96.0.10"));
  std::map<std::string, int> backends;
  for (int i = 0; i < 100; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteHttpRequest(lb, *snap, *vip, 80, nullptr, &r, &why), RouteStatus::kOk) << why;
    ++backends[r.service->name];
  }
  EXPECT_EQ(backends["v1"], 90);
  EXPECT_EQ(backends["v2"], 10);
  EXPECT_EQ(backends.count("web"), 0u);  // the parent's own endpoint only serves when no split exists
}

TEST(HttpRouting, ResourcesBecomeServiceRoutesAndPortProtocols) {
  namespace v1 = zeromesh::v1;
  agent::control::ConfigState state;
  v1::Resource svc;
  svc.mutable_service()->set_name("web");
  svc.mutable_service()->set_namespace_("shop");
  svc.mutable_service()->set_vip("10.96.0.10");
  auto* p = svc.mutable_service()->add_ports();
  p->set_port(80);
  p->set_target_port(8080);
  p->set_resolved_protocol(v1::APP_HTTP);
  auto* p2 = svc.mutable_service()->add_ports();
  p2->set_port(5432);
  state.resources["svc"] = svc;
  v1::Resource rt;
  auto* hr = rt.mutable_http_route();
  hr->set_name("canary");
  hr->set_namespace_("shop");
  hr->add_parent_refs()->set_name("web");
  auto* rule = hr->add_rules();
  auto* m = rule->add_matches();
  auto* h = m->add_headers();
  h->set_name("X-Canary");
  h->set_value("1");
  auto* b = rule->add_backend_refs();
  b->set_name("web");
  b->set_port(80);
  b->set_weight(1);
  auto* f = rule->add_filters()->mutable_request_header_modifier()->add_set();
  f->set_name("x-routed");
  f->set_value("canary");
  rule->add_filters()->mutable_response_header_modifier()->add_remove("server");
  state.resources["rt"] = rt;
  std::vector<agent::Service> out;
  std::string error;
  ASSERT_TRUE(agent::control::ToServices(state, &out, &error)) << error;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].FindPort(80)->protocol, agent::PortProtocol::kHttp);
  EXPECT_EQ(out[0].FindPort(5432)->protocol, agent::PortProtocol::kTcp);
  auto rules = out[0].HttpRulesFor(80);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]->key, "shop/canary#0");
  ASSERT_EQ(rules[0]->matches.size(), 1u);
  EXPECT_EQ(rules[0]->matches[0].headers[0].name, "x-canary");  // header names are matched lower case
  ASSERT_EQ(rules[0]->request_headers.size(), 1u);
  ASSERT_EQ(rules[0]->response_headers.size(), 1u);
  EXPECT_EQ(rules[0]->response_headers[0].remove, std::vector<std::string>{"server"});
  EXPECT_EQ(out[0].HttpRulesFor(5432).size(), 1u);  // a parentRef without a port covers every port
}

// Timeouts, retry and RequestMirror filters reach the agent's rules (the proxy's resilience per request).
TEST(HttpRouting, TimeoutsRetriesAndMirrorsBecomeRuleSettings) {
  namespace v1 = zeromesh::v1;
  agent::control::ConfigState state;
  v1::Resource svc;
  svc.mutable_service()->set_name("web");
  svc.mutable_service()->set_namespace_("shop");
  svc.mutable_service()->set_vip("10.96.0.10");
  auto* p = svc.mutable_service()->add_ports();
  p->set_port(80);
  p->set_target_port(8080);
  p->set_resolved_protocol(v1::APP_HTTP);
  state.resources["svc"] = svc;
  v1::Resource rt;
  auto* hr = rt.mutable_http_route();
  hr->set_name("resilient");
  hr->set_namespace_("shop");
  hr->add_parent_refs()->set_name("web");
  auto* rule = hr->add_rules();
  rule->set_request_timeout_ms(1500);
  rule->set_backend_request_timeout_ms(300);
  rule->mutable_retry()->set_attempts(2);
  rule->mutable_retry()->add_codes(503);
  rule->mutable_retry()->add_codes(502);
  rule->mutable_retry()->set_backoff_ms(40);
  auto* mirror = rule->add_filters()->mutable_request_mirror();
  mirror->mutable_backend()->set_name("shadow");
  mirror->mutable_backend()->set_port(80);
  mirror->set_percent(25);
  auto* other = rule->add_filters()->mutable_request_mirror();
  other->mutable_backend()->set_name("audit");
  other->mutable_backend()->set_namespace_("ops");
  other->mutable_backend()->set_port(8080);
  other->set_percent(100);
  hr->add_rules();  // a rule with none of them
  state.resources["rt"] = rt;
  std::vector<agent::Service> out;
  std::string error;
  ASSERT_TRUE(agent::control::ToServices(state, &out, &error)) << error;
  auto rules = out.at(0).HttpRulesFor(80);
  ASSERT_EQ(rules.size(), 2u);
  const agent::HttpRouteRule* r = rules[0]->key == "shop/resilient#0" ? rules[0] : rules[1];
  EXPECT_EQ(r->request_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(r->backend_request_timeout, std::chrono::milliseconds(300));
  EXPECT_EQ(r->retry.attempts, 2u);
  EXPECT_EQ(r->retry.codes, (std::vector<uint16_t>{503, 502}));
  EXPECT_EQ(r->retry.backoff, std::chrono::milliseconds(40));
  ASSERT_EQ(r->mirrors.size(), 2u);
  EXPECT_EQ(r->mirrors[0].backend.ns, "shop");  // the route's namespace by default
  EXPECT_EQ(r->mirrors[0].backend.name, "shadow");
  EXPECT_EQ(r->mirrors[0].backend.port, 80);
  EXPECT_EQ(r->mirrors[0].percent, 25u);
  EXPECT_EQ(r->mirrors[1].backend.ns, "ops");
  EXPECT_EQ(r->mirrors[1].percent, 100u);
  const agent::HttpRouteRule* plain = r == rules[0] ? rules[1] : rules[0];
  EXPECT_EQ(plain->retry.attempts, 0u);  // no retry stanza: no retries
  EXPECT_EQ(plain->request_timeout.count(), 0);
  EXPECT_TRUE(plain->mirrors.empty());
}

}  // namespace
}  // namespace zm::traffic
