// Where the agent's configuration comes from. Both sources feed the same SnapshotHolder and InMemoryCertStore, so
// the rest of the agent does not know which one runs:
//   file:        a local JSON file (tests, and nodes without a controller); SIGHUP reloads it
//   controller:  the bootstrap file names the controller; config streams in, certificates are signed on CSRs
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::agent::policy {
class PolicyHolder;
}
namespace zm::metrics {
class ConnectionMetrics;
class RequestMetrics;
}  // namespace zm::metrics

namespace zm::agent {

class NodeAgent;

class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  // File: loads it (a bad file is an error). Controller: reads the bootstrap and starts streaming (returns at once).
  virtual bool Start(std::string* error) = 0;
  virtual void OnReloadSignal() = 0;
  // True once a first configuration is in the SnapshotHolder.
  virtual bool HasConfig() const = 0;
  virtual void Stop() = 0;
  virtual std::string Describe() const = 0;
  // The controller's config version last applied and whether the stream is up; nullopt for a local file.
  virtual std::optional<uint64_t> AppliedVersion() const { return std::nullopt; }
  virtual std::optional<bool> Connected() const { return std::nullopt; }
  // Lets the source report what the agent sees (attachments, health) upstream. Called once the agent is ready.
  virtual void SetAgent(const NodeAgent* /*agent*/) {}
  // The proxy's per workload pair counters, sent upstream with each status report (must outlive Stop()).
  virtual void SetTraffic(const metrics::ConnectionMetrics* /*traffic*/) {}
  // The proxy's request metrics, summed per route into each status report (must outlive Stop()).
  virtual void SetRequests(const metrics::RequestMetrics* /*requests*/) {}
};

std::unique_ptr<ConfigSource> MakeFileSource(std::string path, std::string node, SnapshotHolder& snapshots,
                                             InMemoryCertStore& certs);
// |status_interval|: how often the agent reports its status (and traffic counters) to the controller.
std::unique_ptr<ConfigSource> MakeControllerSource(std::string bootstrap_path, std::string node,
                                                   SnapshotHolder& snapshots, InMemoryCertStore& certs,
                                                   policy::PolicyHolder& policies,
                                                   std::chrono::milliseconds status_interval);

}  // namespace zm::agent
