// TCPRoute (Gateway API mesh form) and ServicePolicy manifests: decoding, file:line errors, reference checks, and the
// agent's conversion of the pushed resources into Services with splits and policies.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <tuple>

#include "agent/control/service_adapter.h"
#include "controller/config/snapshot.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/traffic_decode.h"

namespace zm::manifest {
namespace {

const char* kServices = R"(apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata: {name: backend, namespace: shop}
spec: {vip: 10.96.0.10, ports: [{port: 80, targetPort: 8080}], endpoints: [10.244.1.11]}
---
apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata: {name: backend-v1, namespace: shop}
spec: {ports: [{port: 80, targetPort: 8080}], endpoints: [10.244.1.12]}
---
apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata: {name: backend-v2, namespace: shop}
spec: {ports: [{port: 80, targetPort: 9090}], endpoints: [10.244.2.12]}
)";

const char* kRoute = R"(apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: canary
  namespace: shop
spec:
  parentRefs:
  - kind: Service
    name: backend
    port: 80
  rules:
  - backendRefs:
    - name: backend-v1
      port: 80
      weight: 90
    - name: backend-v2
      port: 80
      weight: 10
)";

const char* kPolicy = R"(apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {name: backend, namespace: shop}
spec:
  targetRef: {kind: Service, name: backend}
  loadBalancer: {algorithm: LeastConnections, localityPreference: true}
  connectTimeout: 250ms
  retries: {attempts: 2}
  circuitBreaker: {maxConnections: 100}
  outlierDetection: {consecutiveFailures: 3, baseEjectionTime: 5s, maxEjectionPercent: 50}
  rateLimit: {connectionsPerSecond: 50, burst: 10}
)";

Result Decode(const std::string& routes_text) {
  Result r;
  DecodeText(kServices, "svc.yaml", Limits{}, &r);
  DecodeText(routes_text, "m.yaml", Limits{}, &r);
  CheckSet(&r);
  return r;
}

std::string Errors(const Result& r) {
  std::string all;
  for (const auto& e : r.errors) all += e.file + ":" + std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

void ExpectError(const std::string& text, int line, const std::string& needle) {
  Result r = Decode(text);
  ASSERT_EQ(r.errors.size(), 1u) << Errors(r);
  EXPECT_EQ(r.errors[0].file, "m.yaml");
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].reason;
  EXPECT_NE(r.errors[0].reason.find(needle), std::string::npos) << r.errors[0].reason;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(TrafficManifest, DecodesRouteAndPolicy) {
  Result r = Decode(std::string(kRoute) + "---\n" + kPolicy);
  ASSERT_TRUE(r.ok()) << Errors(r);
  ASSERT_EQ(r.resources.size(), 5u);
  const auto& rt = r.resources[3].resource->tcp_route();
  ASSERT_EQ(rt.parent_refs_size(), 1);
  EXPECT_EQ(rt.parent_refs(0).name(), "backend");
  EXPECT_EQ(rt.parent_refs(0).port(), 80u);
  ASSERT_EQ(rt.rules(0).backend_refs_size(), 2);
  EXPECT_EQ(rt.rules(0).backend_refs(1).weight(), 10u);
  EXPECT_EQ(rt.rules(0).backend_refs(1).namespace_(), "shop");
  const auto& p = r.resources[4].resource->service_policy();
  EXPECT_EQ(p.target_service(), "backend");
  EXPECT_EQ(p.algorithm(), zeromesh::v1::LEAST_CONNECTIONS);
  EXPECT_TRUE(p.locality_preference());
  EXPECT_EQ(p.connect_timeout_ms(), 250u);
  EXPECT_EQ(p.retry_attempts(), 2u);
  EXPECT_EQ(p.max_connections(), 100u);
  EXPECT_EQ(p.outlier_base_ejection_ms(), 5000u);
  EXPECT_EQ(p.rate_limit_per_second(), 50.0);
  EXPECT_EQ(p.rate_limit_burst(), 10u);
}

TEST(TrafficManifest, SpecificErrors) {
  ExpectError(Replace(kRoute, "gateway.networking.k8s.io/v1alpha2", "zeromesh.io/v1alpha1"), 1,
              "expected gateway.networking.k8s.io/v1alpha2");
  ExpectError(Replace(kRoute, "  - kind: Service\n    name: backend\n", "  - kind: Gateway\n    name: backend\n"), 8,
              "must be Service");
  EXPECT_TRUE(Decode(Replace(kRoute, "weight: 90", "weight: 0")).ok());  // 0/10: everything to v2
  ExpectError(Replace(Replace(kRoute, "weight: 90", "weight: 0"), "weight: 10", "weight: 0"), 13,
              "at least one backend needs a weight above 0");
  ExpectError(Replace(kRoute, "weight: 10", "weight: -1"), 18, "weight");
  ExpectError(Replace(kRoute, "name: backend-v2", "name: backend-v3"), 1,
              "backendRef names no Service shop/backend-v3");
  ExpectError(Replace(kRoute, "    port: 80\n  rules", "    port: 81\n  rules"), 1, "parentRef port 81 is not a port");
  ExpectError(Replace(kPolicy, "LeastConnections", "Random"), 6,
              "must be RoundRobin, LeastConnections, PowerOfTwoChoices, LeastRequest or EWMA, not 'Random'");
  ExpectError(Replace(kPolicy, "LeastConnections", "Ewma"), 6, "not 'Ewma'");  // names are case-sensitive
  ExpectError(Replace(kPolicy, "250ms", "fast"), 7, "'spec.connectTimeout': 'fast' is not a duration");
  ExpectError(Replace(kPolicy, "attempts: 2", "attempts: 99"), 8, "attempts");
  ExpectError(Replace(kPolicy, "connectTimeout: 250ms", "idleTimeout: 2h"), 7,
              "'spec.idleTimeout': '2h' is not a duration between");
  ExpectError(Replace(kPolicy, "name: backend}", "name: nothing}"), 1, "targetRef names no Service shop/nothing");
  ExpectError(Replace(kPolicy, "rateLimit: {connectionsPerSecond: 50, burst: 10}", "rateLimit: {burst: 10}"), 11,
              "connectionsPerSecond");
  ExpectError(std::string(kRoute) + "---\n" + Replace(kRoute, "name: canary", "name: other"), 20,
              "already has a route");
}

TEST(TrafficManifest, PerRequestAlgorithmsReachTheAgent) {
  for (auto [name, proto, agent_algo] :
       {std::tuple{"LeastRequest", zeromesh::v1::LEAST_REQUEST, agent::LbAlgorithm::kLeastRequest},
        std::tuple{"EWMA", zeromesh::v1::EWMA, agent::LbAlgorithm::kEwma}}) {
    Result r = Decode(std::string(kRoute) + "---\n" + Replace(kPolicy, "LeastConnections", name));
    ASSERT_TRUE(r.ok()) << Errors(r);
    EXPECT_EQ(r.resources[4].resource->service_policy().algorithm(), proto);
    auto snap = ctrl::Compile(r.resources, ctrl::MeshDefaults{});
    agent::control::ConfigState state;
    for (const auto& [k, res] : snap->resources) state.resources[agent::control::ResourceKeyString(*res)] = *res;
    std::vector<agent::Service> services;
    std::string error;
    ASSERT_TRUE(agent::control::ToServices(state, &services, &error)) << error;
    for (const auto& s : services) {
      if (s.name == "backend") {
        EXPECT_EQ(s.policy.algorithm, agent_algo) << name;
      }
    }
  }
}

TEST(TrafficManifest, AgentGetsSplitAndPolicy) {
  Result r = Decode(std::string(kRoute) + "---\n" + kPolicy);
  ASSERT_TRUE(r.ok()) << Errors(r);
  auto snap = ctrl::Compile(r.resources, ctrl::MeshDefaults{});
  agent::control::ConfigState state;
  for (const auto& [k, res] : snap->resources) state.resources[agent::control::ResourceKeyString(*res)] = *res;
  std::vector<agent::Service> services;
  std::string error;
  ASSERT_TRUE(agent::control::ToServices(state, &services, &error)) << error;
  ASSERT_EQ(services.size(), 3u);
  const agent::Service* backend = nullptr;
  for (const auto& s : services) {
    if (s.name == "backend") backend = &s;
  }
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->vips, std::vector<net::IpAddr>{*net::IpAddr::Parse("10.96.0.10")});
  ASSERT_EQ(backend->splits.size(), 1u);
  EXPECT_EQ(backend->splits[0].route, "shop/canary");
  ASSERT_EQ(backend->splits[0].backends.size(), 2u);
  EXPECT_EQ(backend->splits[0].backends[0].name, "backend-v1");
  EXPECT_EQ(backend->splits[0].backends[0].weight, 90u);
  EXPECT_EQ(backend->policy.name, "shop/backend");
  EXPECT_EQ(backend->policy.algorithm, agent::LbAlgorithm::kLeastConnections);
  EXPECT_EQ(backend->policy.connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(backend->policy.outlier_max_ejection_percent, 50u);
}

TEST(TrafficManifest, DurationsInMilliseconds) {
  EXPECT_EQ(ParseDurationMs("500ms"), 500);
  EXPECT_EQ(ParseDurationMs("2s"), 2000);
  EXPECT_EQ(ParseDurationMs("1m30s"), 90000);
  EXPECT_EQ(ParseDurationMs("1h"), 3600000);
  EXPECT_FALSE(ParseDurationMs("10"));
  EXPECT_FALSE(ParseDurationMs("ms"));
  EXPECT_FALSE(ParseDurationMs("5x"));
}

}  // namespace
}  // namespace zm::manifest
