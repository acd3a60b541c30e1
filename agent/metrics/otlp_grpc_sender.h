// The SpanExporter's Sender for an OTLP/gRPC receiver (an OpenTelemetry Collector): plaintext only when asked for
// (insecure), otherwise TLS that verifies the collector's certificate against a CA bundle file (or gRPC's default
// roots) and a name. The bundle is read when the first batch goes and again whenever the file changes (a mounted
// ConfigMap or Secret rotates in place); a missing or bad bundle fails each batch with an error that names the file,
// counted by the exporter, and never stops the agent.
#pragma once

#include <chrono>
#include <string>

#include "agent/metrics/span_exporter.h"

namespace zm::metrics {

struct OtlpTlsOptions {
  bool insecure = false;    // plaintext (collectors' default 4317 receiver without tls); must be chosen explicitly
  std::string ca_file;      // PEM bundle the collector's certificate must chain to; "": gRPC's default roots
  std::string server_name;  // the name the certificate must carry (and the SNI); "": the endpoint's host
};

// Checks a combination before the agent starts: insecure with a CA file or a server name is a contradiction.
bool ValidOtlpTls(const OtlpTlsOptions& tls, std::string* error);

// Sends to |endpoint| ("host:port"), each call bounded by |timeout|. Called on the exporter's thread only.
SpanExporter::Sender OtlpGrpcSender(const std::string& endpoint, const OtlpTlsOptions& tls,
                                    std::chrono::milliseconds timeout);

}  // namespace zm::metrics
