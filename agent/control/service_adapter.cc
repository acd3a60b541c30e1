#include "agent/control/service_adapter.h"

#include <arpa/inet.h>

#include <map>

namespace zm::agent::control {
namespace v1 = zeromesh::v1;
namespace {

LbAlgorithm ToAlgorithm(v1::LoadBalancerAlgorithm a) {
  switch (a) {
    case v1::LEAST_CONNECTIONS:
      return LbAlgorithm::kLeastConnections;
    case v1::POWER_OF_TWO_CHOICES:
      return LbAlgorithm::kPowerOfTwoChoices;
    default:
      return LbAlgorithm::kRoundRobin;
  }
}

ServiceTrafficPolicy ToPolicy(const v1::ServicePolicy& p) {
  using std::chrono::milliseconds;
  ServiceTrafficPolicy out;
  out.name = p.namespace_() + "/" + p.name();
  out.algorithm = ToAlgorithm(p.algorithm());
  out.locality_preference = p.locality_preference();
  out.connect_timeout = milliseconds(p.connect_timeout_ms());
  out.idle_timeout = milliseconds(p.idle_timeout_ms());
  out.retry_attempts = p.retry_attempts();
  out.max_connections = p.max_connections();
  out.max_pending_connections = p.max_pending_connections();
  out.outlier_consecutive_failures = p.outlier_consecutive_failures();
  if (p.outlier_base_ejection_ms() != 0) out.outlier_base_ejection = milliseconds(p.outlier_base_ejection_ms());
  if (p.outlier_max_ejection_percent() != 0) out.outlier_max_ejection_percent = p.outlier_max_ejection_percent();
  out.rate_limit_per_second = p.rate_limit_per_second();
  out.rate_limit_burst = p.rate_limit_burst();
  out.rate_limit_per_source = p.rate_limit_per_source();
  return out;
}

}  // namespace

bool ToServices(const ConfigState& state, std::vector<Service>* out, std::string* error) {
  std::vector<Service> services;
  std::map<std::string, size_t> by_key;
  for (const auto& [key, r] : state.resources) {
    if (!r.has_service()) continue;
    const auto& s = r.service();
    Service svc;
    svc.name = s.name();
    svc.ns = s.namespace_();
    std::string where = "service " + svc.Key();
    if (!s.vip().empty() && inet_pton(AF_INET, s.vip().c_str(), &svc.vip) != 1) {
      *error = where + ": bad VIP '" + s.vip() + "'";
      return false;
    }
    for (const auto& p : s.ports()) {
      if (p.port() == 0 || p.port() > 65535 || p.target_port() > 65535) {
        *error = where + ": bad port " + std::to_string(p.port()) + " -> " + std::to_string(p.target_port());
        return false;
      }
      svc.ports.push_back(
          {static_cast<uint16_t>(p.port()), static_cast<uint16_t>(p.target_port() != 0 ? p.target_port() : p.port())});
    }
    for (const auto& e : s.endpoints()) {
      ServiceEndpoint ep;
      if (inet_pton(AF_INET, e.ip().c_str(), &ep.ip) != 1) {
        *error = where + ": bad endpoint IP '" + e.ip() + "'";
        return false;
      }
      ep.workload = e.workload();
      ep.node = e.node();
      svc.endpoints.push_back(std::move(ep));
    }
    by_key[svc.Key()] = services.size();
    services.push_back(std::move(svc));
  }
  for (const auto& [key, r] : state.resources) {
    if (r.has_service_policy()) {
      const auto& p = r.service_policy();
      auto it = by_key.find(p.namespace_() + "/" + p.target_service());
      if (it != by_key.end()) services[it->second].policy = ToPolicy(p);
    } else if (r.has_tcp_route()) {
      const auto& rt = r.tcp_route();
      if (rt.rules().empty()) continue;
      for (const auto& parent : rt.parent_refs()) {
        std::string pns = parent.namespace_().empty() ? rt.namespace_() : parent.namespace_();
        auto it = by_key.find(pns + "/" + parent.name());
        if (it == by_key.end() || parent.port() > 65535) continue;
        TrafficSplit split;
        split.route = rt.namespace_() + "/" + rt.name();
        split.port = static_cast<uint16_t>(parent.port());
        for (const auto& b : rt.rules(0).backend_refs()) {
          if (b.port() > 65535) continue;
          split.backends.push_back({b.namespace_().empty() ? rt.namespace_() : b.namespace_(), b.name(),
                                    static_cast<uint16_t>(b.port()), b.weight()});
        }
        services[it->second].splits.push_back(std::move(split));
      }
    }
  }
  *out = std::move(services);
  return true;
}

}  // namespace zm::agent::control
