#include "agent/metrics/conn_labels.h"

namespace zm::metrics {
namespace {

std::string OrUnknown(const std::string& v) {
  return v.empty() ? kUnknown : v;
}

}  // namespace

const char* ReporterName(proxy::Reporter r) {
  return r == proxy::Reporter::kSource ? "source" : "destination";
}

ConnLabels ConnLabels::From(const proxy::ConnRecord& r, proxy::Reporter reporter) {
  return {ReporterName(reporter),
          OrUnknown(r.source.workload),
          OrUnknown(r.source.ns),
          OrUnknown(r.source.principal),
          OrUnknown(r.destination.workload),
          OrUnknown(r.destination.ns),
          OrUnknown(r.destination.principal)};
}

ConnLabels ConnLabels::Overflow(proxy::Reporter reporter) {
  return {ReporterName(reporter), kOther, kOther, kOther, kOther, kOther, kOther};
}

prometheus::Labels ConnLabels::ToPrometheus() const {
  return {{"reporter", reporter},
          {"source_workload", source_workload},
          {"source_namespace", source_namespace},
          {"source_principal", source_principal},
          {"destination_workload", destination_workload},
          {"destination_namespace", destination_namespace},
          {"destination_principal", destination_principal}};
}

std::string ConnLabels::Key() const {
  // \x1f cannot occur in workload names, namespaces or SPIFFE IDs (all validated upstream).
  std::string k;
  for (const std::string* v : {&reporter, &source_workload, &source_namespace, &source_principal, &destination_workload,
                               &destination_namespace, &destination_principal}) {
    k += *v;
    k += '\x1f';
  }
  return k;
}

}  // namespace zm::metrics
