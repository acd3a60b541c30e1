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
  if (opts.otlp_endpoint.empty()) return;
  spans_ = std::make_shared<SpanExporter>(opts.spans,
                                          OtlpGrpcSender(opts.otlp_endpoint, opts.otlp_tls, std::chrono::seconds(5)));
  hub.Add(std::make_shared<CallbackCollector>([spans = spans_] {
    std::vector<prometheus::MetricFamily> out;
    auto counter = [&out](const char* name, const char* help, uint64_t v) {
      auto f = CounterFamily(name, help);
      AddSample(&f, static_cast<double>(v), {});
      out.push_back(std::move(f));
    };
    counter("zeromesh_trace_spans_exported_total", "Spans sent to the OTLP receiver.", spans->exported());
    counter("zeromesh_trace_spans_dropped_total", "Spans dropped because the export queue was full.", spans->dropped());
    counter("zeromesh_trace_spans_failed_total", "Spans of export requests that failed.", spans->failed());
    return out;
  }));
}

void Telemetry::OnRequest(const proxy::RequestRecord& r) {
  requests_.Record(r);
  route_policy_.Record(r);
  access_log_->RecordRequest(r);
  if (spans_ != nullptr && r.span.sampled()) {
    otlp::Span span;
    if (EncodeSpan(r, &span)) spans_->Add(std::move(span));
  }
}

void Telemetry::OnClose(proxy::ConnRecord& r) {
  metrics_.Close(r);
  access_log_->Record(r);
}

}  // namespace zm::metrics
