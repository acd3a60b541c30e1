// Wires the agent's observability: the proxy's telemetry (metrics + access log), agent health as metrics, and the
// admin endpoints (/metrics /healthz /readyz /debug/*), all read from a running NodeAgent.
// Order of use: observer() into NodeAgentOptions -> NodeAgent::Start -> Start(agent) -> ... -> Stop -> agent stops.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "agent/admin/admin_server.h"
#include "agent/metrics/agent_health.h"
#include "agent/metrics/telemetry.h"
#include "agent/node/node_agent.h"
#include "common/metrics/metrics_hub.h"

namespace zm::agent {

struct ObservabilityOptions {
  admin::AdminOptions admin;
  metrics::TelemetryOptions telemetry;
  // Controller mode sets these; local-config mode leaves them empty (version = snapshots applied, no stream gauge).
  std::function<uint64_t()> config_version;
  std::function<bool()> controller_connected;
};

class Observability {
 public:
  explicit Observability(ObservabilityOptions opts);
  ~Observability();

  std::shared_ptr<proxy::ConnObserver> observer() const { return telemetry_; }
  // Starts the admin endpoints. A listener that cannot start is logged, never fatal: the data plane matters more.
  void Start(const NodeAgent& agent, const SnapshotHolder& snapshots, const CertStore& certs);
  void SetLinksSynced() { links_synced_ = true; }
  void StopEndpoints();  // the admin and metrics servers (thread-safe against the agent still running)
  void Stop();           // StopEndpoints(), then flushes the access log

  admin::Readiness Readiness() const;
  metrics::AgentHealth Health() const;
  const metrics::MetricsHub& hub() const { return hub_; }
  const metrics::ConnectionMetrics& connections() const { return telemetry_->metrics(); }  // lives as long as this
  const metrics::RequestMetrics& requests() const { return telemetry_->request_metrics(); }

 private:
  uint64_t ListenersExpected() const;   // 3 per family the node captures
  uint64_t ListenersInSockmap() const;  // of those, present in zm_listeners / zm_listeners6
  ObservabilityOptions opts_;
  metrics::MetricsHub hub_;
  std::shared_ptr<metrics::Telemetry> telemetry_;
  std::unique_ptr<admin::AdminServer> admin_;
  const NodeAgent* agent_ = nullptr;
  const SnapshotHolder* snapshots_ = nullptr;
  const CertStore* certs_ = nullptr;
  std::atomic<bool> links_synced_{false};
};

}  // namespace zm::agent
