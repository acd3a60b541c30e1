// The node proxy's ConnObserver: per-connection metrics and the access log.
#pragma once

#include <memory>

#include "agent/metrics/access_log.h"
#include "agent/metrics/connection_metrics.h"
#include "agent/metrics/otlp_grpc_sender.h"
#include "agent/metrics/request_metrics.h"
#include "agent/metrics/route_policy_metrics.h"
#include "agent/metrics/span_exporter.h"
#include "agent/proxy/conn_observer.h"
#include "common/metrics/metrics_hub.h"

namespace zm::metrics {

struct TelemetryOptions {
  size_t max_series = ConnectionMetrics::kDefaultMaxSeries;
  size_t max_request_series = RequestMetrics::kDefaultMaxSeries;
  AccessLogOptions access_log;
  // OTLP/gRPC receiver of the proxies' spans ("host:port"); "": no spans (docs/design.md "Tracing").
  std::string otlp_endpoint;
  OtlpTlsOptions otlp_tls;  // TLS to that receiver, or plaintext when insecure
  SpanExporterOptions spans;
};

class Telemetry : public proxy::ConnObserver {
 public:
  // Registers its metrics in |hub|, which must outlive this object.
  Telemetry(MetricsHub& hub, TelemetryOptions opts);

  void OnOpen(proxy::ConnRecord& r) override { metrics_.Open(r); }
  void OnProgress(proxy::ConnRecord& r) override { metrics_.Progress(r); }
  void OnClose(proxy::ConnRecord& r) override;
  void OnTlsFailure(proxy::TlsFailure why) override { metrics_.TlsFailure(why); }
  void OnRequest(const proxy::RequestRecord& r) override;

  AccessLog& access_log() { return *access_log_; }
  const ConnectionMetrics& metrics() const { return metrics_; }
  const RequestMetrics& request_metrics() const { return requests_; }
  SpanExporter* spans() { return spans_.get(); }  // nullptr without an OTLP endpoint

 private:
  ConnectionMetrics metrics_;
  RequestMetrics requests_;
  RoutePolicyMetrics route_policy_;  // rate-limit refusals and injected faults
  std::shared_ptr<AccessLog> access_log_;
  std::shared_ptr<SpanExporter> spans_;
};

}  // namespace zm::metrics
