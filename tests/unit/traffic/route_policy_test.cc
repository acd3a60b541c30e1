// ServicePolicy attached to HTTPRoute / GRPCRoute rules (spec.http: rate limit, fault injection): decoding and its
// errors, the agent's conversion onto the rules, the token bucket, the per-rule limiter and the fault draws.
#include <gtest/gtest.h>

#include <cmath>

#include "agent/control/service_adapter.h"
#include "agent/proxy/route_policy_gate.h"
#include "agent/traffic/fault_injection.h"
#include "agent/traffic/route_rate_limiter.h"
#include "controller/config/snapshot.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/route_policy_decode.h"

namespace zm {
namespace {

using manifest::Result;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const char* kServices = R"(apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata: {name: backend, namespace: shop}
spec: {vip: 10.96.0.10, ports: [{port: 80, targetPort: 8080, appProtocol: http}], endpoints: [10.244.1.11]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: backend, port: 80}]
  rules:
  - name: api
    matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: backend, port: 80}]
  - name: rest
    backendRefs: [{name: backend, port: 80}]
)";

const char* kPolicy = R"(apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {name: api-limit, namespace: shop}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: web, sectionName: api}
  http:
    rateLimit: {requests: 20, interval: 1s, burst: 30, perSource: true}
    faultInjection:
      delay: {fixedDelay: 200ms, percentage: 12.5}
      abort: {httpStatus: 503, grpcStatus: 8, percentage: 50}
)";

Result Decode(const std::string& text) {
  Result r;
  manifest::DecodeText(kServices, "svc.yaml", manifest::Limits{}, &r);
  manifest::DecodeText(text, "m.yaml", manifest::Limits{}, &r);
  manifest::CheckSet(&r);
  return r;
}

std::string Errors(const Result& r) {
  std::string all;
  for (const auto& e : r.errors) all += e.file + ":" + std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

void ExpectError(const std::string& text, int line, const std::string& needle) {
  Result r = Decode(text);
  ASSERT_EQ(r.errors.size(), 1u) << Errors(r);
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].reason;
  EXPECT_NE(r.errors[0].reason.find(needle), std::string::npos) << r.errors[0].reason;
}

const zeromesh::v1::ServicePolicy* PolicyOf(const Result& r) {
  for (const auto& l : r.resources) {
    if (l.resource->has_service_policy()) return &l.resource->service_policy();
  }
  return nullptr;
}

// The backend Service's HTTP rules after the agent converted the compiled set.
std::vector<agent::Service> AgentServices(const Result& r) {
  auto snap = ctrl::Compile(r.resources, ctrl::MeshDefaults{});
  agent::control::ConfigState state;
  for (const auto& [k, res] : snap->resources) state.resources[agent::control::ResourceKeyString(*res)] = *res;
  std::vector<agent::Service> services;
  std::string error;
  EXPECT_TRUE(agent::control::ToServices(state, &services, &error)) << error;
  return services;
}

TEST(RoutePolicyDecode, DecodesRateLimitAndFaults) {
  Result r = Decode(kPolicy);
  ASSERT_TRUE(r.ok()) << Errors(r);
  EXPECT_TRUE(r.notices.empty());
  const auto* p = PolicyOf(r);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->target_service(), "");
  EXPECT_EQ(p->target_route().kind(), "HTTPRoute");
  EXPECT_EQ(p->target_route().name(), "web");
  EXPECT_EQ(p->target_route().section_name(), "api");
  EXPECT_EQ(p->http_rate_limit().requests(), 20u);
  EXPECT_EQ(p->http_rate_limit().interval_ms(), 1000u);
  EXPECT_EQ(p->http_rate_limit().burst(), 30u);
  EXPECT_TRUE(p->http_rate_limit().per_source());
  EXPECT_EQ(p->http_fault().delay_ms(), 200u);
  EXPECT_DOUBLE_EQ(p->http_fault().delay_percentage(), 12.5);
  EXPECT_EQ(p->http_fault().abort_http_status(), 503u);
  EXPECT_EQ(p->http_fault().abort_grpc_status(), 8u);
  EXPECT_DOUBLE_EQ(p->http_fault().abort_percentage(), 50);
}

TEST(RoutePolicyDecode, Defaults) {
  Result r = Decode(Replace(Replace(Replace(kPolicy, ", burst: 30, perSource: true", ""), ", sectionName: api", ""),
                            "    faultInjection:\n      delay: {fixedDelay: 200ms, percentage: 12.5}\n"
                            "      abort: {httpStatus: 503, grpcStatus: 8, percentage: 50}\n",
                            "    faultInjection: {abort: {httpStatus: 500}}\n"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  const auto* p = PolicyOf(r);
  EXPECT_EQ(p->target_route().section_name(), "");
  EXPECT_EQ(p->http_rate_limit().burst(), 20u);  // burst defaults to requests
  EXPECT_FALSE(p->http_rate_limit().per_source());
  EXPECT_DOUBLE_EQ(p->http_fault().abort_percentage(), 100);
  EXPECT_EQ(p->http_fault().abort_grpc_status(), 0u);
  EXPECT_EQ(p->http_fault().delay_ms(), 0u);
  Result m = Decode(Replace(kPolicy, "interval: 1s", "interval: 1m"));
  ASSERT_TRUE(m.ok()) << Errors(m);
  EXPECT_EQ(PolicyOf(m)->http_rate_limit().interval_ms(), 60000u);
}

TEST(RoutePolicyDecode, SpecificErrors) {
  ExpectError(Replace(kPolicy, "interval: 1s", "interval: soon"), 7, "'spec.http.rateLimit.interval': 'soon'");
  ExpectError(Replace(kPolicy, "interval: 1s", "interval: 2h"), 7, "between 1ms and 1h");
  ExpectError(Replace(kPolicy, "requests: 20, ", ""), 7, "missing required field 'spec.http.rateLimit.requests'");
  ExpectError(Replace(kPolicy, "requests: 20", "requests: 0"), 7, "requests");
  ExpectError(Replace(kPolicy, "percentage: 50}", "percentage: 150}"), 10, "out of range [0, 100]");
  ExpectError(Replace(kPolicy, "percentage: 50}", "percentage: -5}"), 10, "must be a number between 0 and 100");
  ExpectError(Replace(kPolicy, "percentage: 12.5}", "percentage: 1e2}"), 9, "must be a number between 0 and 100");
  ExpectError(Replace(kPolicy, "percentage: 12.5}", "percentage: half}"), 9,
              "'spec.http.faultInjection.delay.percentage'");
  ExpectError(Replace(kPolicy, "httpStatus: 503", "httpStatus: 99"), 10, "httpStatus");
  ExpectError(Replace(kPolicy, "grpcStatus: 8", "grpcStatus: 0"), 10, "grpcStatus");
  ExpectError(Replace(kPolicy, "httpStatus: 503, ", ""), 10,
              "missing required field 'spec.http.faultInjection.abort.httpStatus'");
  ExpectError(Replace(kPolicy, "fixedDelay: 200ms, ", ""), 9,
              "missing required field 'spec.http.faultInjection.delay.fixedDelay'");
  ExpectError(Replace(kPolicy, "fixedDelay: 200ms", "fixedDelay: later"), 9,
              "'spec.http.faultInjection.delay.fixedDelay'");
  ExpectError(Replace(kPolicy, "group: gateway.networking.k8s.io, ", ""), 5,
              "'spec.targetRef.group' must be gateway.networking.k8s.io");
  ExpectError(Replace(kPolicy, "name: web,", "name: nothing,"), 1, "targetRef names no HTTPRoute shop/nothing");
  ExpectError(Replace(kPolicy, "kind: HTTPRoute", "kind: GRPCRoute"), 1, "targetRef names no GRPCRoute shop/web");
  // Service-only fields on a route target, and the reverse.
  ExpectError(Replace(kPolicy, "  http:\n", "  connectTimeout: 1s\n  http:\n"), 6,
              "'spec.connectTimeout' applies to a Service target");
  ExpectError(Replace(kPolicy, "  http:\n", "  circuitBreaker: {maxConnections: 5}\n  http:\n"), 6,
              "'spec.circuitBreaker' applies to a Service target");
  ExpectError(Replace(kPolicy, "group: gateway.networking.k8s.io, kind: HTTPRoute, name: web, sectionName: api",
                      "kind: Service, name: backend"),
              9, "'spec.http.faultInjection' applies to a route target");  // the line of its value
  const std::string head = std::string(kPolicy).substr(0, std::string(kPolicy).find("  http:\n"));
  ExpectError(Replace(head, "group: gateway.networking.k8s.io, kind: HTTPRoute, name: web, sectionName: api",
                      "kind: Service, name: backend, sectionName: api"),
              5, "'spec.targetRef.sectionName' names a rule of an HTTPRoute or GRPCRoute");
  ExpectError(head + "  http: {}\n", 6, "'spec.http' needs a 'rateLimit', a 'faultInjection' or both");
  ExpectError(head + "  http:\n    faultInjection: {}\n", 7, "needs a 'delay', an 'abort' or both");
  ExpectError(head, 5, "missing required field 'spec.http'");
  ExpectError(Replace(kPolicy, "    faultInjection:\n", "    unknown: 1\n    faultInjection:\n"), 8, "unknown");
  // Two policies on one rule; a rule-specific one beside a route-wide one is fine.
  ExpectError(std::string(kPolicy) + "---\n" + Replace(kPolicy, "name: api-limit", "name: second"), 12,
              "already has a ServicePolicy");
  EXPECT_TRUE(Decode(std::string(kPolicy) + "---\n" +
                     Replace(Replace(kPolicy, "name: api-limit", "name: whole"), ", sectionName: api", ""))
                  .ok());
}

// spec.http.rateLimit on a Service target: the destination's per-pod limit (faultInjection stays route-only).
const char* kServiceLimit = R"(apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {name: backend-limit, namespace: shop}
spec:
  targetRef: {kind: Service, name: backend}
  connectTimeout: 2s
  http:
    rateLimit: {requests: 20, interval: 1s, burst: 25, perSource: true}
)";

TEST(ServiceRateLimitDecode, DecodesAndReachesTheAgentService) {
  Result r = Decode(kServiceLimit);
  ASSERT_TRUE(r.ok()) << Errors(r);
  const auto* p = PolicyOf(r);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->target_service(), "backend");
  EXPECT_FALSE(p->has_target_route());
  EXPECT_EQ(p->connect_timeout_ms(), 2000u);
  EXPECT_EQ(p->http_rate_limit().requests(), 20u);
  EXPECT_EQ(p->http_rate_limit().burst(), 25u);
  EXPECT_TRUE(p->http_rate_limit().per_source());
  const agent::Service* backend = nullptr;
  auto services = AgentServices(r);
  for (const auto& s : services) {
    if (s.name == "backend") backend = &s;
  }
  ASSERT_NE(backend, nullptr);
  const agent::HttpRateLimitPolicy& rl = backend->policy.http_rate_limit;
  EXPECT_TRUE(rl.enabled());
  EXPECT_EQ(rl.policy, "shop/backend-limit");
  EXPECT_EQ(rl.requests, 20u);
  EXPECT_EQ(rl.burst, 25u);
  EXPECT_EQ(rl.interval, milliseconds(1000));
  EXPECT_TRUE(rl.per_source);
  // The route rules are untouched: the limit is the destination's, not the source's.
  for (const auto* rule : backend->HttpRulesFor(80)) EXPECT_FALSE(rule->rate_limit.enabled());
  // Defaults as on a route: interval 1s, burst = requests.
  Result d = Decode(Replace(kServiceLimit, "interval: 1s, burst: 25, perSource: true", ""));
  ASSERT_TRUE(d.ok()) << Errors(d);
  EXPECT_EQ(PolicyOf(d)->http_rate_limit().burst(), 20u);
  EXPECT_EQ(PolicyOf(d)->http_rate_limit().interval_ms(), 1000u);
  // A Service policy without spec.http has no request limit.
  Result none = Decode(
      Replace(kServiceLimit, "  http:\n    rateLimit: {requests: 20, interval: 1s, burst: 25, perSource: true}\n", ""));
  ASSERT_TRUE(none.ok()) << Errors(none);
  EXPECT_FALSE(PolicyOf(none)->has_http_rate_limit());
}

TEST(ServiceRateLimitDecode, SpecificErrors) {
  ExpectError(Replace(kServiceLimit, "interval: 1s", "interval: soon"), 8, "'spec.http.rateLimit.interval': 'soon'");
  ExpectError(Replace(kServiceLimit, "requests: 20", "requests: 0"), 8, "requests");
  ExpectError(Replace(kServiceLimit, "requests: 20, ", ""), 8, "missing required field 'spec.http.rateLimit.requests'");
  ExpectError(Replace(kServiceLimit, "perSource: true", "perSource: maybe"), 8, "perSource");
  ExpectError(
      Replace(kServiceLimit, "    rateLimit:", "    faultInjection: {abort: {httpStatus: 503}}\n    rateLimit:"), 8,
      "'spec.http.faultInjection' applies to a route target");
  ExpectError(Replace(kServiceLimit, "    rateLimit: {requests: 20, interval: 1s, burst: 25, perSource: true}\n",
                      "    retries: 3\n"),
              8, "unknown");
  ExpectError(
      Replace(kServiceLimit, "  http:\n    rateLimit: {requests: 20, interval: 1s, burst: 25, perSource: true}\n",
              "  http: {}\n"),
      7, "'spec.http' on a Service target needs a 'rateLimit'");
}

TEST(RoutePolicyDecode, UnknownSectionIsANotice) {
  Result r = Decode(Replace(kPolicy, "sectionName: api", "sectionName: nothing"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  ASSERT_EQ(r.notices.size(), 1u);
  EXPECT_NE(r.notices[0].reason.find("has no rule named 'nothing'"), std::string::npos) << r.notices[0].reason;
}

TEST(RoutePolicyDecode, AgentAppliesPolicyToRules) {
  // A route-wide policy (abort 100 %) and one for rule "api" (rate limit + faults): "api" takes the rule's own
  // settings, "rest" the route's.
  Result r = Decode(std::string(kPolicy) + "---\n" +
                    Replace(Replace(Replace(kPolicy, "name: api-limit", "name: whole"), ", sectionName: api", ""),
                            "    rateLimit: {requests: 20, interval: 1s, burst: 30, perSource: true}\n", ""));
  ASSERT_TRUE(r.ok()) << Errors(r);
  auto services = AgentServices(r);
  const agent::Service* backend = nullptr;
  for (const auto& s : services) {
    if (s.name == "backend") backend = &s;
  }
  ASSERT_NE(backend, nullptr);
  auto rules = backend->HttpRulesFor(80);
  ASSERT_EQ(rules.size(), 2u);
  const agent::HttpRouteRule* api = rules[0]->key == "shop/web#0" ? rules[0] : rules[1];
  const agent::HttpRouteRule* rest = api == rules[0] ? rules[1] : rules[0];
  EXPECT_EQ(api->rate_limit.policy, "shop/api-limit");
  EXPECT_EQ(api->rate_limit.requests, 20u);
  EXPECT_EQ(api->rate_limit.burst, 30u);
  EXPECT_EQ(api->rate_limit.interval, milliseconds(1000));
  EXPECT_TRUE(api->rate_limit.per_source);
  EXPECT_EQ(api->fault.policy, "shop/api-limit");
  EXPECT_EQ(api->fault.abort_status, 503);
  EXPECT_EQ(api->fault.abort_grpc_status, 8);
  EXPECT_EQ(api->fault.delay, milliseconds(200));
  EXPECT_FALSE(rest->rate_limit.enabled());  // the route-wide policy has no rate limit
  EXPECT_EQ(rest->fault.policy, "shop/whole");
  EXPECT_TRUE(rest->fault.enabled());
}

TEST(TokenBucket, BurstThenRefill) {
  auto t0 = Clock::now();
  traffic::TokenBucket b(5, 2.0, t0);  // 5 tokens, 2 per second
  uint32_t retry = 0;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.Take(t0, &retry)) << i;
  EXPECT_FALSE(b.Take(t0, &retry));
  EXPECT_EQ(retry, 1u);  // 0.5 s to the next token: at least one whole second
  EXPECT_FALSE(b.Take(t0 + milliseconds(400), &retry));
  EXPECT_TRUE(b.Take(t0 + milliseconds(500), &retry));  // 0.5 s at 2/s: one token
  EXPECT_FALSE(b.Take(t0 + milliseconds(500), &retry));
  // Refill stops at the burst.
  EXPECT_TRUE(b.Full(t0 + milliseconds(3000)));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.Take(t0 + milliseconds(60000), &retry)) << i;
  EXPECT_FALSE(b.Take(t0 + milliseconds(60000), &retry));
}

TEST(TokenBucket, RetryAfterIsWholeSecondsToTheNextToken) {
  auto t0 = Clock::now();
  traffic::TokenBucket slow(1, 1.0 / 60, t0);  // 1 per minute
  uint32_t retry = 0;
  EXPECT_TRUE(slow.Take(t0, &retry));
  EXPECT_FALSE(slow.Take(t0, &retry));
  EXPECT_EQ(retry, 60u);
  EXPECT_FALSE(slow.Take(t0 + milliseconds(30500), &retry));
  EXPECT_EQ(retry, 30u);  // 29.5 s left, rounded up
  traffic::TokenBucket fast(1, 100, t0);
  EXPECT_TRUE(fast.Take(t0, &retry));
  EXPECT_FALSE(fast.Take(t0, &retry));
  EXPECT_EQ(retry, 1u);  // 10 ms: never 0
}

agent::HttpRouteRule LimitedRule(uint32_t requests, uint32_t burst, bool per_source) {
  agent::HttpRouteRule rule;
  rule.key = "shop/web#0";
  rule.rate_limit.policy = "shop/api-limit";
  rule.rate_limit.requests = requests;
  rule.rate_limit.interval = milliseconds(1000);
  rule.rate_limit.burst = burst;
  rule.rate_limit.per_source = per_source;
  return rule;
}

TEST(RouteRateLimiter, PerRuleAndPerSource) {
  traffic::RouteRateLimiter limiter;
  auto t0 = Clock::now();
  auto shared = LimitedRule(10, 3, false);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take(shared, "a", t0).allowed);
  auto v = limiter.Take(shared, "b", t0);  // one bucket for every source
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.retry_after_s, 1u);
  EXPECT_TRUE(limiter.Take(shared, "a", t0 + milliseconds(100)).allowed);  // 10/s: a token per 100 ms
  EXPECT_EQ(limiter.rejections(), 1u);

  traffic::RouteRateLimiter per_source;
  auto each = LimitedRule(10, 2, true);
  EXPECT_TRUE(per_source.Take(each, "a", t0).allowed);
  EXPECT_TRUE(per_source.Take(each, "a", t0).allowed);
  EXPECT_FALSE(per_source.Take(each, "a", t0).allowed);
  EXPECT_TRUE(per_source.Take(each, "b", t0).allowed);  // b has its own bucket
  EXPECT_EQ(per_source.buckets(), 2u);

  // A changed limit starts a full bucket at the new rate.
  auto more = LimitedRule(10, 5, true);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(per_source.Take(more, "a", t0).allowed) << i;
  EXPECT_FALSE(per_source.Take(more, "a", t0).allowed);
  // No limit: always allowed, no bucket.
  agent::HttpRouteRule free_rule;
  free_rule.key = "shop/web#1";
  EXPECT_TRUE(per_source.Take(free_rule, "a", t0).allowed);
  EXPECT_EQ(per_source.buckets(), 2u);
}

TEST(RouteRateLimiter, DestinationBucketsPerServiceAndPod) {
  // The destination's buckets: keyed by "<service>@<pod>", every source in one unless perSource.
  traffic::RouteRateLimiter limiter;
  agent::HttpRateLimitPolicy limit = LimitedRule(10, 2, false).rate_limit;
  auto t0 = Clock::now();
  EXPECT_TRUE(limiter.Take(limit, "shop/backend@10.244.1.11", "spiffe://a", t0).allowed);
  EXPECT_TRUE(limiter.Take(limit, "shop/backend@10.244.1.11", "spiffe://b", t0).allowed);
  auto v = limiter.Take(limit, "shop/backend@10.244.1.11", "10.0.0.9", t0);  // all sources share the pod's bucket
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.retry_after_s, 1u);
  EXPECT_TRUE(limiter.Take(limit, "shop/backend@10.244.1.12", "spiffe://a", t0).allowed);  // another pod
  EXPECT_TRUE(limiter.Take(limit, "shop/other@10.244.1.11", "spiffe://a", t0).allowed);    // another Service
  // A rule bucket and a destination bucket never meet (the rule's key has no "@").
  agent::HttpRouteRule rule = LimitedRule(10, 2, false);
  EXPECT_TRUE(limiter.Take(rule, "spiffe://a", t0).allowed);
  EXPECT_EQ(limiter.buckets(), 4u);
  EXPECT_EQ(limiter.rejections(), 1u);
  limit.per_source = true;
  traffic::RouteRateLimiter each;
  EXPECT_TRUE(each.Take(limit, "shop/backend@10.244.1.11", "spiffe://a", t0).allowed);
  EXPECT_TRUE(each.Take(limit, "shop/backend@10.244.1.11", "spiffe://a", t0).allowed);
  EXPECT_FALSE(each.Take(limit, "shop/backend@10.244.1.11", "spiffe://a", t0).allowed);
  EXPECT_TRUE(each.Take(limit, "shop/backend@10.244.1.11", "spiffe://b", t0).allowed);
  EXPECT_EQ(each.buckets(), 2u);
}

TEST(RouteRateLimiter, AllowanceOverTime) {
  // 20 per second, burst 20, requests as fast as possible for 2.5 s: burst + rate x elapsed pass.
  traffic::RouteRateLimiter limiter;
  auto rule = LimitedRule(20, 20, false);
  auto t0 = Clock::now();
  int allowed = 0;
  for (int ms = 0; ms <= 2500; ms += 5) allowed += limiter.Take(rule, "", t0 + milliseconds(ms)).allowed ? 1 : 0;
  EXPECT_EQ(allowed, 20 + 50);
}

TEST(FaultInjection, PercentageSelection) {
  EXPECT_FALSE(traffic::PercentHit(0, 0));
  EXPECT_TRUE(traffic::PercentHit(100, 0xffffffffu));
  EXPECT_TRUE(traffic::PercentHit(50, 0x7fffffffu));
  EXPECT_FALSE(traffic::PercentHit(50, 0x80000000u));
  EXPECT_TRUE(traffic::PercentHit(0.5, 21474835u));  // 0.5 % of 2^32 = 21474836.48
  EXPECT_FALSE(traffic::PercentHit(0.5, 21474837u));
  EXPECT_FALSE(traffic::PercentHit(std::nan(""), 0));
  // Evenly spread draws: the share that hits is the percentage.
  int hits = 0;
  for (uint32_t i = 0; i < 10000; ++i) hits += traffic::PercentHit(12.5, i * 429497u) ? 1 : 0;
  EXPECT_NEAR(hits, 1250, 2);
}

TEST(FaultInjection, DrawsKeepTheShareOverAnyRun) {
  // From whatever start, every run of draws hits about the percentage (not a binomial spread), for both streams.
  for (auto stream : {traffic::FaultStream::kAbort, traffic::FaultStream::kDelay}) {
    for (double percent : {50.0, 12.5, 0.5}) {
      int hits = 0;
      for (int i = 1; i <= 2000; ++i) {
        hits += traffic::PercentHit(percent, traffic::FaultDraw(stream)) ? 1 : 0;
        if (i % 200 == 0) {
          EXPECT_NEAR(hits, percent / 100 * i, 3) << percent << "% after " << i;
        }
      }
    }
  }
  // The two streams are not in step: with 50 % each, all four combinations come about equally.
  int both = 0;
  for (int i = 0; i < 1000; ++i) {
    both += traffic::PercentHit(50, traffic::FaultDraw(traffic::FaultStream::kAbort)) &&
            traffic::PercentHit(50, traffic::FaultDraw(traffic::FaultStream::kDelay));
  }
  EXPECT_NEAR(both, 250, 40);
}

TEST(FaultInjection, AbortBeforeDelay) {
  agent::HttpFaultPolicy f;
  f.abort_status = 503;
  f.abort_percent = 50;
  f.delay = milliseconds(200);
  f.delay_percent = 100;
  EXPECT_EQ(traffic::DecideFault(f, 0, 0).action, traffic::FaultAction::kAbort);
  auto v = traffic::DecideFault(f, 0xf0000000u, 0);
  EXPECT_EQ(v.action, traffic::FaultAction::kDelay);
  EXPECT_EQ(v.delay, milliseconds(200));
  f.delay_percent = 0;
  EXPECT_EQ(traffic::DecideFault(f, 0xf0000000u, 0).action, traffic::FaultAction::kNone);
  EXPECT_EQ(traffic::GrpcStatusForHttp(503), 14u);
  EXPECT_EQ(traffic::GrpcStatusForHttp(403), 7u);
  EXPECT_EQ(traffic::GrpcStatusForHttp(418), 2u);
}

TEST(RoutePolicyGate, RateLimitedReplyIsSharedByBothSides) {
  proxy::LocalReply r = proxy::RateLimitedReply("shop/backend-limit", 3);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.grpc_status, 8u);
  EXPECT_EQ(std::string(r.fault), "ratelimited");
  EXPECT_EQ(r.policy, "shop/backend-limit");
  std::string wire = proxy::SerializeLocalReply(r, "POST", /*close=*/false);
  EXPECT_NE(wire.find("\r\nretry-after: 3\r\n"), std::string::npos) << wire;
  EXPECT_NE(wire.find("(ServicePolicy shop/backend-limit)"), std::string::npos) << wire;
}

TEST(RoutePolicyGate, RateLimitedReplyAndAbort) {
  traffic::RouteRateLimiter limiter;
  auto rule = LimitedRule(1, 1, false);
  EXPECT_FALSE(proxy::DecideRoutePolicy(&limiter, rule, nullptr, net::IpAddr()).reply);
  auto v = proxy::DecideRoutePolicy(&limiter, rule, nullptr, net::IpAddr());
  ASSERT_TRUE(v.reply);
  EXPECT_EQ(v.local.status, 429);
  EXPECT_EQ(v.local.grpc_status, 8u);  // RESOURCE_EXHAUSTED
  EXPECT_EQ(std::string(v.local.fault), "ratelimited");
  std::string wire = proxy::SerializeLocalReply(v.local, "GET", /*close=*/false);
  EXPECT_EQ(wire.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u) << wire;
  EXPECT_NE(wire.find("\r\nretry-after: 1\r\n"), std::string::npos) << wire;
  EXPECT_NE(wire.find("\r\nx-zeromesh-ratelimited: 1\r\n"), std::string::npos) << wire;
  EXPECT_EQ(wire.find("connection: close"), std::string::npos) << wire;
  // Without a limiter (or a limit) only the fault applies: a 100 % abort.
  agent::HttpRouteRule faulty;
  faulty.fault.abort_status = 503;
  faulty.fault.abort_percent = 100;
  auto a = proxy::DecideRoutePolicy(nullptr, faulty, nullptr, net::IpAddr());
  ASSERT_TRUE(a.reply);
  EXPECT_EQ(a.local.status, 503);
  EXPECT_EQ(a.local.grpc_status, 14u);
  EXPECT_EQ(std::string(a.local.fault), "abort");
  EXPECT_NE(proxy::SerializeLocalReply(a.local, "POST", true).find("connection: close\r\n\r\nfault filter abort\n"),
            std::string::npos);
  // No body after the head of a HEAD response (the length it would have stays), nor of a 204 / 304.
  std::string head_reply = proxy::SerializeLocalReply(a.local, "HEAD", false);
  EXPECT_EQ(head_reply.substr(head_reply.size() - 4), "\r\n\r\n") << head_reply;
  EXPECT_NE(head_reply.find("content-length: 19\r\n"), std::string::npos) << head_reply;
  a.local.status = 204;
  std::string no_content = proxy::SerializeLocalReply(a.local, "GET", false);
  EXPECT_EQ(no_content.find("content-length"), std::string::npos) << no_content;
  EXPECT_EQ(no_content.substr(no_content.size() - 4), "\r\n\r\n") << no_content;
}

}  // namespace
}  // namespace zm
