#include "agent/metrics/request_metrics.h"

#include <map>
#include <tuple>

#include "agent/metrics/conn_labels.h"

namespace zm::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildHistogram;

// Seconds: sub-millisecond in-cluster calls up to long polls.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                  0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
// Bytes: 1 B .. 100 MB, by decades (Istio's size buckets).
const prometheus::Histogram::BucketBoundaries kSizeBuckets = {1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8};

std::string OrUnknown(const std::string& v) {
  return v.empty() ? kUnknown : v;
}

const char* Method(const std::string& m) {
  static const char* const kStandard[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                          "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  for (const char* s : kStandard) {
    if (m == s) return s;
  }
  return kOther;
}

std::string Code(int status) {
  return status == 0 ? "0" : (status >= 100 && status <= 599 ? std::to_string(status) : kOther);
}

}  // namespace

RequestMetrics::RequestMetrics(prometheus::Registry& registry, size_t max_series)
    : max_series_(max_series),
      requests_(BuildCounter()
                    .Name("zeromesh_requests_total")
                    .Help("HTTP requests the node proxy routed, by response code (0: no response), source and "
                          "destination workload, destination Service and route.")
                    .Register(registry)),
      duration_(BuildHistogram()
                    .Name("zeromesh_request_duration_seconds")
                    .Help("Time from a request's head to the end of its response, as the reporting proxy saw it.")
                    .Register(registry)),
      request_bytes_(BuildHistogram()
                         .Name("zeromesh_request_bytes")
                         .Help("HTTP request sizes (head and body) as received from the client.")
                         .Register(registry)),
      response_bytes_(BuildHistogram()
                          .Name("zeromesh_response_bytes")
                          .Help("HTTP response sizes (head and body) as relayed back to the client.")
                          .Register(registry)),
      retries_(BuildCounter()
                   .Name("zeromesh_request_retries_total")
                   .Help("Retries of HTTP requests by an HTTPRoute retry policy (tries after the first), labelled "
                         "like zeromesh_requests_total: the destination and response code are the final try's.")
                   .Register(registry)),
      overflowed_(BuildCounter()
                      .Name("zeromesh_request_metrics_label_overflow_total")
                      .Help("Requests counted in an \"other\" series because the label-set cap was reached.")
                      .Register(registry)
                      .Add({})) {}

prometheus::Labels RequestMetrics::LabelsOf(const proxy::RequestRecord& r) {
  return {{"reporter", ReporterName(r.reporter)},
          {"source_workload", OrUnknown(r.source.workload)},
          {"source_namespace", OrUnknown(r.source.ns)},
          {"source_principal", OrUnknown(r.source.principal)},
          {"destination_workload", OrUnknown(r.destination.workload)},
          {"destination_namespace", OrUnknown(r.destination.ns)},
          {"destination_service", OrUnknown(r.destination_service)},
          {"route", r.route.empty() ? "none" : r.route},
          {"request_method", Method(r.method)},
          {"response_code", Code(r.status)}};
}

RequestMetrics::Series* RequestMetrics::Resolve(std::string key, const prometheus::Labels& labels, bool* overflowed) {
  auto make = [this](const prometheus::Labels& l) {
    auto s = std::make_unique<Series>();
    s->requests = &requests_.Add(l);
    s->duration = &duration_.Add(l, kDurationBuckets);
    s->request_bytes = &request_bytes_.Add(l, kSizeBuckets);
    s->response_bytes = &response_bytes_.Add(l, kSizeBuckets);
    s->retries = &retries_.Add(l);
    s->labels = l;
    return s;
  };
  if (by_key_.size() < max_series_) return by_key_.emplace(std::move(key), make(labels)).first->second.get();
  // Past the cap: only the reporter and the response code survive, so error rates stay visible.
  *overflowed = true;
  prometheus::Labels other = labels;
  for (auto& [name, value] : other) {
    if (name != "reporter" && name != "response_code") value = kOther;
  }
  auto& slot = overflow_[other.at("reporter") + "/" + other.at("response_code")];
  if (!slot) slot = make(other);
  return slot.get();
}

void RequestMetrics::Record(const proxy::RequestRecord& r) {
  // The lookup key is built from the label values directly (one string); the label map only for a new series.
  std::string key;
  key.reserve(256);
  for (const std::string_view v :
       {std::string_view(ReporterName(r.reporter)), std::string_view(r.source.workload), std::string_view(r.source.ns),
        std::string_view(r.source.principal), std::string_view(r.destination.workload),
        std::string_view(r.destination.ns), std::string_view(r.destination_service), std::string_view(r.route),
        std::string_view(Method(r.method))}) {
    key.append(v);
    key.push_back('\0');
  }
  key.append(std::to_string(r.status));
  bool overflowed = false;
  Series* s;
  {
    std::lock_guard l(mu_);
    auto it = by_key_.find(key);
    s = it != by_key_.end() ? it->second.get() : Resolve(std::move(key), LabelsOf(r), &overflowed);
  }
  if (overflowed) overflowed_.Increment();
  s->requests->Increment();
  s->duration->Observe(std::chrono::duration<double>(r.duration).count());
  s->request_bytes->Observe(static_cast<double>(r.request_bytes));
  s->response_bytes->Observe(static_cast<double>(r.response_bytes));
  if (r.attempts > 1) s->retries->Increment(static_cast<double>(r.attempts - 1));
  if (!r.grpc_status.empty() && r.grpc_status != "0" && r.status != 0 && r.status < 500) {
    s->grpc_failures.fetch_add(1, std::memory_order_relaxed);
  }
}

const std::vector<double>& RequestMetrics::DurationBoundsSeconds() {
  return kDurationBuckets;
}

std::vector<RequestMetrics::RouteTotals> RequestMetrics::Totals() const {
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  std::map<Key, RouteTotals> by_route;
  auto add = [&](const Series& s) {
    const auto& l = s.labels;
    Key key{l.at("reporter"), l.at("source_workload"), l.at("source_namespace"), l.at("destination_service"),
            l.at("route")};
    auto& t = by_route[key];
    if (t.reporter.empty()) {
      std::tie(t.reporter, t.source_workload, t.source_namespace, t.destination_service, t.route) = key;
      t.latency_counts.assign(kDurationBuckets.size() + 1, 0);
    }
    auto n = static_cast<uint64_t>(s.requests->Value());
    t.requests += n;
    const std::string& code = l.at("response_code");
    if (code == "0" || code.front() == '5') t.failures += n;
    t.failures += s.grpc_failures.load(std::memory_order_relaxed);
    // Prometheus buckets are cumulative: each bucket's own count is the difference to the one below.
    auto h = s.duration->Collect().histogram;
    uint64_t below = 0;
    for (size_t i = 0; i < h.bucket.size() && i < t.latency_counts.size(); i++) {
      t.latency_counts[i] += h.bucket[i].cumulative_count - below;
      below = h.bucket[i].cumulative_count;
    }
  };
  {
    std::lock_guard l(mu_);
    for (const auto& [k, s] : by_key_) add(*s);
    for (const auto& [k, s] : overflow_) add(*s);
  }
  std::vector<RouteTotals> out;
  out.reserve(by_route.size());
  for (auto& [k, t] : by_route) out.push_back(std::move(t));
  return out;
}

size_t RequestMetrics::series() const {
  std::lock_guard l(mu_);
  return by_key_.size();
}

}  // namespace zm::metrics
