#include "agent/traffic/dump.h"

namespace zm::traffic {
namespace {

nlohmann::json VipsJson(const agent::Service& s) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : s.vips) out.push_back(v.ToString());
  return out;
}

nlohmann::json PolicyJson(const agent::ServiceTrafficPolicy& p) {
  return {
      {"name", p.name},
      {"loadBalancer",
       {{"algorithm", agent::LbAlgorithmName(p.algorithm)}, {"localityPreference", p.locality_preference}}},
      {"connectTimeoutMs", p.connect_timeout.count()},
      {"idleTimeoutMs", p.idle_timeout.count()},
      {"retries", {{"attempts", p.retry_attempts}}},
      {"circuitBreaker", {{"maxConnections", p.max_connections}, {"maxPendingConnections", p.max_pending_connections}}},
      {"outlierDetection",
       {{"consecutiveFailures", p.outlier_consecutive_failures},
        {"baseEjectionTimeMs", p.outlier_base_ejection.count()},
        {"maxEjectionPercent", p.outlier_max_ejection_percent}}},
      {"rateLimit",
       {{"connectionsPerSecond", p.rate_limit_per_second},
        {"burst", p.rate_limit_burst},
        {"perSource", p.rate_limit_per_source}}}};
}

}  // namespace

nlohmann::json ServicesJson(const agent::MeshSnapshot& snap, Balancer* lb, const RateLimiter* limiter) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : snap.services()) {
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& p : s.ports) ports.push_back({{"port", p.port}, {"targetPort", p.target_port}});
    nlohmann::json eps = nlohmann::json::array();
    for (const auto& e : s.endpoints) {
      nlohmann::json j = {{"ip", e.ip.ToString()}, {"workload", e.workload}, {"node", e.node}};
      if (lb != nullptr) {
        // Live state per target port (the balancer keys endpoints by ip:targetPort).
        nlohmann::json live = nlohmann::json::object();
        for (const auto& p : s.ports) {
          Balancer::EndpointView v = lb->View(s.Key(), e.ip, p.target_port);
          live[std::to_string(p.target_port)] = {
              {"active", v.active},
              {"requests", v.requests},
              {"latencyMs", v.latency_ms < 0 ? nlohmann::json() : nlohmann::json(v.latency_ms)},
              {"ejected", v.ejected},
              {"ejections", v.ejections}};
        }
        j["live"] = std::move(live);
      }
      eps.push_back(std::move(j));
    }
    nlohmann::json splits = nlohmann::json::array();
    for (const auto& sp : s.splits) {
      nlohmann::json backends = nlohmann::json::array();
      for (const auto& b : sp.backends) {
        backends.push_back({{"service", b.ns + "/" + b.name}, {"port", b.port}, {"weight", b.weight}});
      }
      splits.push_back({{"route", sp.route}, {"port", sp.port}, {"backends", std::move(backends)}});
    }
    nlohmann::json j = {{"name", s.name},
                        {"namespace", s.ns},
                        {"vip", s.vips.empty() ? "" : s.vips.front().ToString()},
                        {"vips", VipsJson(s)},
                        {"ports", ports},
                        {"endpoints", std::move(eps)},
                        {"splits", std::move(splits)},
                        {"policy", PolicyJson(s.policy)}};
    if (lb != nullptr) j["circuitBreakerRejections"] = lb->Overflows(s.Key());
    if (limiter != nullptr) j["rateLimitRejections"] = limiter->rejections(s.Key());  // as the destination node
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace zm::traffic
