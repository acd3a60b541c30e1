// The agent's whole control-plane side, wired to agent/state: config stream -> SnapshotHolder, certificates ->
// InMemoryCertStore, periodic status reports. The agent's main owns one of these.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "agent/control/cert_manager.h"
#include "agent/control/config_client.h"
#include "agent/control/status_reporter.h"
#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::agent::control {

class ControlPlane {
 public:
  struct Options {
    ConfigClient::Options config;
    CertManager::Options certs;
    std::chrono::milliseconds status_interval{10000};
    // Extra consumer of each config (Services, TrafficPermissions: not in MeshSnapshot). "" accepts; an error NACKs.
    std::function<std::string(const ConfigState&)> extra_apply;
    // Adds what only the agent's main knows (BPF attachments, health, fail mode) to each status report.
    std::function<void(zeromesh::v1::AgentStatus*)> status_hook;
  };

  ControlPlane(Bootstrap bootstrap, SnapshotHolder* snapshots, InMemoryCertStore* certs, Options opts);
  ~ControlPlane();

  void Start();
  void Stop();
  void ReportNow() { reporter_.ReportNow(); }  // e.g. once the agent's parts are up and the status hook can see them

  uint64_t applied_version() const { return config_.applied_version(); }
  bool connected() const { return config_.connected(); }
  std::shared_ptr<const ConfigState> config() const;  // last applied, nullptr before the first
  CertManager& cert_manager() { return cert_manager_; }

 private:
  std::string Apply(const ConfigState& state);
  void OnCert(const IssuedIdentity& issued);
  void OnCertRemoved(const std::string& id);
  zeromesh::v1::AgentStatus Collect();

  const Bootstrap bootstrap_;
  SnapshotHolder* snapshots_;
  InMemoryCertStore* certs_;
  const Options opts_;

  mutable std::mutex mu_;  // cert store mutations + the fields below
  std::shared_ptr<const ConfigState> applied_;
  std::string bundle_pem_;
  std::string trust_domain_;

  CertManager cert_manager_;
  ConfigClient config_;
  StatusReporter reporter_;
};

}  // namespace zm::agent::control
