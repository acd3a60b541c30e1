// `meshctl stat`: golden request metrics per Service and route (like `linkerd viz stat`), from the per route
// request aggregates each agent sends with its status report (AgentStatus.requests): total requests and success
// rate since the agents started, requests/s and p50/p99 latency over each agent's last report interval.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "zeromesh/v1/status.pb.h"

namespace zm::meshctl {

// Rows per destination Service (the route backend each request went to, so a split shows as one row per backend) and
// route rule, for the proxies of one side ("source": where routes are chosen; "destination": the serving side),
// summed over agents and source workloads; |service| ("ns/name", "" = all) filters.
nlohmann::json StatJson(const zeromesh::v1::MeshStatus& st, const std::string& reporter, const std::string& service);
std::string RenderStat(const nlohmann::json& j);

// The q-quantile (0..1) of a histogram given per bucket counts (bounds: upper bounds; counts has one more entry, the
// overflow), interpolated linearly inside its bucket as Prometheus' histogram_quantile does; the last bound when it
// falls in the overflow. -1 when the histogram is empty or counts and bounds do not fit.
double HistogramQuantile(double q, const std::vector<double>& bounds, const std::vector<uint64_t>& counts);

}  // namespace zm::meshctl
