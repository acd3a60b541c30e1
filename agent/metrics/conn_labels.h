// The label set of the per-connection metrics (Istio's standard TCP labels, zeromesh_ prefix on the metric names).
#pragma once

#include <prometheus/labels.h>

#include <string>

#include "agent/proxy/conn_observer.h"

namespace zm::metrics {

inline constexpr const char* kUnknown = "unknown";  // a side that is not a mesh workload / has no identity
inline constexpr const char* kOther = "other";      // the overflow bucket once the label-set cap is reached

struct ConnLabels {
  std::string reporter;  // "source" | "destination"
  std::string source_workload, source_namespace, source_principal;
  std::string destination_workload, destination_namespace, destination_principal;

  // Labels of |r| as seen by |reporter| (a same-node connection is reported by both ends).
  static ConnLabels From(const proxy::ConnRecord& r, proxy::Reporter reporter);
  // Every workload label "other": where connections go once the cap is reached.
  static ConnLabels Overflow(proxy::Reporter reporter);

  prometheus::Labels ToPrometheus() const;
  std::string Key() const;  // unique per label set
};

const char* ReporterName(proxy::Reporter r);

}  // namespace zm::metrics
