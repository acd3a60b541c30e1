#include "agent/metrics/route_policy_metrics.h"

#include "agent/metrics/conn_labels.h"

namespace zm::metrics {

RoutePolicyMetrics::RoutePolicyMetrics(prometheus::Registry& registry)
    : rate_limited_(prometheus::BuildCounter()
                        .Name("zeromesh_request_rate_limited_total")
                        .Help("HTTP requests and gRPC calls refused by a route's local rate limit (ServicePolicy "
                              "spec.http.rateLimit; answered 429 or RESOURCE_EXHAUSTED by the source node proxy), by "
                              "route rule, policy and source workload.")
                        .Register(registry)),
      faults_(prometheus::BuildCounter()
                  .Name("zeromesh_request_faults_injected_total")
                  .Help("Faults injected by a route's ServicePolicy (spec.http.faultInjection) at the source node "
                        "proxy, by route rule, policy and fault (abort, delay).")
                  .Register(registry)) {}

prometheus::Counter* RoutePolicyMetrics::Series(prometheus::Family<prometheus::Counter>& family,
                                                prometheus::Labels labels) {
  std::string key = &family == &rate_limited_ ? "r" : "f";
  for (const auto& [name, value] : labels) {
    key.push_back('\0');
    key.append(value);
  }
  std::lock_guard l(mu_);
  if (auto it = series_.find(key); it != series_.end()) return it->second;
  if (series_.size() >= kMaxSeries) {
    for (auto& [name, value] : labels) {
      if (name != "fault") value = kOther;
    }
    return &family.Add(labels);  // the family returns the existing "other" counter after the first time
  }
  prometheus::Counter* c = &family.Add(labels);
  series_.emplace(std::move(key), c);
  return c;
}

void RoutePolicyMetrics::Record(const proxy::RequestRecord& r) {
  if (r.fault.empty()) return;
  const std::string route = r.route.empty() ? "none" : r.route;
  const std::string policy = r.fault_policy.empty() ? kUnknown : r.fault_policy;
  if (r.fault == "ratelimited") {
    Series(rate_limited_, {{"reporter", ReporterName(r.reporter)},
                           {"source_workload", r.source.workload.empty() ? kUnknown : r.source.workload},
                           {"source_namespace", r.source.ns.empty() ? kUnknown : r.source.ns},
                           {"route", route},
                           {"policy", policy}})
        ->Increment();
  } else {
    Series(faults_, {{"reporter", ReporterName(r.reporter)}, {"route", route}, {"policy", policy}, {"fault", r.fault}})
        ->Increment();
  }
}

}  // namespace zm::metrics
