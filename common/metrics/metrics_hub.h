// The agent's metric sources in one place: a prometheus-cpp Registry for the metrics the agent updates as things
// happen, plus collectors that read state (BPF counters, proxy counters, health) only when scraped.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace zm::metrics {

// A Collectable whose families come from a function, called at scrape time.
class CallbackCollector : public prometheus::Collectable {
 public:
  explicit CallbackCollector(std::function<std::vector<prometheus::MetricFamily>()> fn) : fn_(std::move(fn)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return fn_(); }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> fn_;
};

class MetricsHub {
 public:
  MetricsHub() : registry_(std::make_shared<prometheus::Registry>()) {}
  prometheus::Registry& registry() { return *registry_; }
  void Add(std::shared_ptr<prometheus::Collectable> c);
  std::vector<prometheus::MetricFamily> Collect() const;
  std::string Render() const;  // Prometheus text format 0.0.4

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors_;
};

// Builders for collectors.
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
prometheus::MetricFamily CounterFamily(std::string name, std::string help);
void AddSample(prometheus::MetricFamily* f, double value, std::vector<prometheus::ClientMetric::Label> labels = {});

}  // namespace zm::metrics
