#include "common/metrics/metrics_hub.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace zm::metrics {

void MetricsHub::Add(std::shared_ptr<prometheus::Collectable> c) {
  std::lock_guard l(mu_);
  collectors_.push_back(std::move(c));
}

std::vector<prometheus::MetricFamily> MetricsHub::Collect() const {
  std::vector<prometheus::MetricFamily> out = registry_->Collect();
  std::lock_guard l(mu_);
  for (const auto& c : collectors_) {
    auto more = c->Collect();
    out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return out;
}

std::string MetricsHub::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Collect());
  return out.str();
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  return {std::move(name), std::move(help), prometheus::MetricType::Gauge, {}};
}

prometheus::MetricFamily CounterFamily(std::string name, std::string help) {
  return {std::move(name), std::move(help), prometheus::MetricType::Counter, {}};
}

void AddSample(prometheus::MetricFamily* f, double value, std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

}  // namespace zm::metrics
