#include "tools/meshctl/stat_views.h"

#include <cstdio>
#include <map>
#include <utility>
#include <vector>

#include "tools/meshctl/output.h"

namespace zm::meshctl {
namespace v1 = zeromesh::v1;
using json = nlohmann::json;

double HistogramQuantile(double q, const std::vector<double>& bounds, const std::vector<uint64_t>& counts) {
  if (counts.size() != bounds.size() + 1 || bounds.empty()) return -1;
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return -1;
  const double rank = q * static_cast<double>(total);
  double below = 0;
  for (size_t i = 0; i < counts.size(); i++) {
    const double c = static_cast<double>(counts[i]);
    if (c > 0 && below + c >= rank) {
      if (i == bounds.size()) return bounds.back();  // beyond the last bound: all we know is "more than"
      const double lower = i == 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * (rank - below) / c;
    }
    below += c;
  }
  return bounds.back();
}

namespace {

struct Row {
  uint64_t requests = 0, failures = 0;
  double rps = 0;
  bool has_window = false;
  uint64_t window_requests = 0;
  std::vector<uint64_t> latency;  // summed window counts over the reporting agents
  std::vector<double> bounds;
  std::map<std::string, bool> sources;  // "ns/workload" of the clients
};

json OrNull(double v) {
  return v < 0 ? json(nullptr) : json(v);
}

}  // namespace

json StatJson(const v1::MeshStatus& st, const std::string& reporter, const std::string& service) {
  std::map<std::pair<std::string, std::string>, Row> rows;  // by (service, route)
  for (const auto& agent : st.agents()) {
    const auto& rep = agent.last_report();
    std::vector<double> bounds(rep.request_latency_bounds_ms().begin(), rep.request_latency_bounds_ms().end());
    for (const auto& r : rep.requests()) {
      if (r.reporter() != reporter || (!service.empty() && r.destination_service() != service)) continue;
      Row& row = rows[{r.destination_service(), r.route()}];
      row.requests += r.requests();
      row.failures += r.failures();
      row.sources[r.source_namespace() + "/" + r.source_workload()] = true;
      if (r.window_seconds() <= 0) continue;  // an agent's first report: no window yet
      row.has_window = true;
      row.rps += static_cast<double>(r.window_requests()) / r.window_seconds();
      row.window_requests += r.window_requests();
      // Agents of another version could bucket differently: only histograms of the first one's bounds add up.
      if (row.bounds.empty()) {
        row.bounds = bounds;
        row.latency.assign(bounds.size() + 1, 0);
      }
      if (bounds != row.bounds || static_cast<size_t>(r.window_latency_counts_size()) != row.latency.size()) continue;
      for (int i = 0; i < r.window_latency_counts_size(); i++) row.latency[i] += r.window_latency_counts(i);
    }
  }
  json out = json::array();
  for (const auto& [key, row] : rows) {
    std::vector<std::string> sources;
    for (const auto& [s, _] : row.sources) sources.push_back(s);
    json j = {{"service", key.first},
              {"route", key.second},
              {"reporter", reporter},
              {"sources", sources},
              {"requests", row.requests},
              {"failures", row.failures},
              {"success_rate", row.requests ? json(1.0 - double(row.failures) / double(row.requests)) : json(nullptr)},
              {"rps", row.has_window ? json(row.rps) : json(nullptr)},
              {"window_requests", row.window_requests},
              {"latency_p50_ms", OrNull(HistogramQuantile(0.5, row.bounds, row.latency))},
              {"latency_p99_ms", OrNull(HistogramQuantile(0.99, row.bounds, row.latency))}};
    out.push_back(std::move(j));
  }
  return out;
}

namespace {

std::string Fmt(const char* f, double v) {
  char buf[32];
  snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string Ms(const json& v) {
  if (v.is_null()) return "-";
  const double ms = v.get<double>();
  return ms < 10 ? Fmt("%.2fms", ms) : (ms < 1000 ? Fmt("%.0fms", ms) : Fmt("%.1fs", ms / 1000));
}

}  // namespace

std::string RenderStat(const json& j) {
  if (j.empty()) return "no request traffic reported (HTTP and gRPC Service ports only, as the agents last reported)\n";
  Table t({"SERVICE", "ROUTE", "REQUESTS", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P99"});
  for (const auto& r : j) {
    const auto& sr = r["success_rate"];
    t.Add({r["service"].get<std::string>(), r["route"].get<std::string>(),
           std::to_string(r["requests"].get<uint64_t>()), sr.is_null() ? "-" : Fmt("%.2f%%", sr.get<double>() * 100),
           r["rps"].is_null() ? "-" : Fmt("%.1f", r["rps"].get<double>()), Ms(r["latency_p50_ms"]),
           Ms(r["latency_p99_ms"])});
  }
  return t.Render() + "(REQUESTS and SUCCESS since the agents started; RPS and latency over their last report)\n";
}

}  // namespace zm::meshctl
