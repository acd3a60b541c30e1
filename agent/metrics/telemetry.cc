#include "agent/metrics/telemetry.h"

namespace zm::metrics {

Telemetry::Telemetry(MetricsHub& hub, TelemetryOptions opts)
    : metrics_(hub.registry(), opts.max_series),
      requests_(hub.registry(), opts.max_request_series),
      route_policy_(hub.registry()),
      access_log_(std::make_shared<AccessLog>(opts.access_log)) {
  // The collector keeps the log alive: a scrape never reads a destroyed object.
  hub.Add(std::make_shared<CallbackCollector>([log = access_log_] {
    auto f = CounterFamily("zeromesh_access_log_lines_total", "Access log lines, by outcome.");
    AddSample(&f, static_cast<double>(log->written()), {{"outcome", "written"}});
    AddSample(&f, static_cast<double>(log->dropped()), {{"outcome", "dropped"}});
    AddSample(&f, static_cast<double>(log->sampled_out()), {{"outcome", "sampled_out"}});
    return std::vector<prometheus::MetricFamily>{std::move(f)};
  }));
}

void Telemetry::OnRequest(const proxy::RequestRecord& r) {
  requests_.Record(r);
  route_policy_.Record(r);
  access_log_->RecordRequest(r);
}

void Telemetry::OnClose(proxy::ConnRecord& r) {
  metrics_.Close(r);
  access_log_->Record(r);
}

}  // namespace zm::metrics
