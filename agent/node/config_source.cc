#include "agent/node/config_source.h"

#include <atomic>

#include "agent/bpf/attach_check.h"
#include "agent/bpf/bpf_manager.h"
#include "agent/control/bootstrap.h"
#include "agent/control/control_plane.h"
#include "agent/metrics/connection_metrics.h"
#include "agent/node/node_agent.h"
#include "agent/node/request_report.h"
#include "agent/policy/policy_holder.h"
#include "agent/state/local_config.h"
#include "common/log.h"

namespace zm::agent {
namespace {

// status.proto: AgentStatus.traffic holds at most this many pairs (the metrics' own label-set cap).
constexpr size_t kMaxTrafficPairs = 1000;

void FillTraffic(const metrics::ConnectionMetrics& m, zeromesh::v1::AgentStatus* st) {
  for (const auto& p : m.Snapshot(kMaxTrafficPairs)) {
    auto* t = st->add_traffic();
    t->set_reporter(p.labels.reporter);
    t->set_source_workload(p.labels.source_workload);
    t->set_source_namespace(p.labels.source_namespace);
    t->set_source_principal(p.labels.source_principal);
    t->set_destination_workload(p.labels.destination_workload);
    t->set_destination_namespace(p.labels.destination_namespace);
    t->set_destination_principal(p.labels.destination_principal);
    t->set_connections_opened(p.opened);
    t->set_connections_closed(p.closed);
    t->set_bytes_sent(p.sent);
    t->set_bytes_received(p.received);
    t->set_denials(p.denials);
  }
}

class FileSource : public ConfigSource {
 public:
  FileSource(std::string path, std::string node, SnapshotHolder& snapshots, InMemoryCertStore& certs)
      : path_(std::move(path)), node_(std::move(node)), snapshots_(snapshots), source_(path_, &snapshots, &certs) {}

  bool Start(std::string* error) override {
    if (!source_.Reload(error)) return false;
    if (snapshots_.Get()->node() != node_) {
      *error = path_ + ": node: the file is for node '" + snapshots_.Get()->node() + "', this agent is '" + node_ + "'";
      return false;
    }
    return true;
  }
  void OnReloadSignal() override {
    std::string error;
    if (source_.Reload(&error)) {
      log::Info("config reloaded", {{"source", Describe()}});
    } else {
      log::Error("config reload rejected, keeping the last good config", {{"error", error}});
    }
  }
  bool HasConfig() const override { return snapshots_.Get() != nullptr; }
  void Stop() override {}
  std::string Describe() const override { return "file:" + path_; }

 private:
  std::string path_;
  std::string node_;
  SnapshotHolder& snapshots_;
  LocalConfigSource source_;
};

class ControllerSource : public ConfigSource {
 public:
  ControllerSource(std::string bootstrap_path, std::string node, SnapshotHolder& snapshots, InMemoryCertStore& certs,
                   policy::PolicyHolder& policies, std::chrono::milliseconds status_interval)
      : path_(std::move(bootstrap_path)),
        node_(std::move(node)),
        snapshots_(snapshots),
        certs_(certs),
        policies_(policies),
        status_interval_(status_interval) {}
  ~ControllerSource() override { Stop(); }

  bool Start(std::string* error) override {
    control::Bootstrap bootstrap;
    if (!control::LoadBootstrap(path_, &bootstrap, error)) return false;
    if (bootstrap.node.empty()) bootstrap.node = node_;  // Kubernetes: one bootstrap for every node
    if (bootstrap.node != node_) {
      *error = path_ + ": node: the bootstrap is for node '" + bootstrap.node + "', this agent is '" + node_ + "'";
      return false;
    }
    controller_ = bootstrap.controller;
    control::ControlPlane::Options opts;
    opts.status_interval = status_interval_;
    // Policies are not part of MeshSnapshot: compile them here. A config whose policies do not compile is NACKed
    // and the last good one stays in force.
    opts.extra_apply = [this](const control::ConfigState& state) {
      std::string err;
      return policies_.Update(state, &err) ? std::string() : "TrafficPermission: " + err;
    };
    opts.status_hook = [this](zeromesh::v1::AgentStatus* st) { FillStatus(st); };
    plane_ = std::make_unique<control::ControlPlane>(std::move(bootstrap), &snapshots_, &certs_, std::move(opts));
    plane_->Start();
    return true;
  }
  void OnReloadSignal() override { log::Info("SIGHUP ignored: configuration comes from the controller"); }
  bool HasConfig() const override { return plane_ && plane_->config() != nullptr && snapshots_.Get() != nullptr; }
  void Stop() override {
    if (plane_) plane_->Stop();
  }
  std::string Describe() const override { return "controller:" + controller_; }
  std::optional<uint64_t> AppliedVersion() const override {
    return plane_ ? std::optional<uint64_t>(plane_->applied_version()) : std::nullopt;
  }
  std::optional<bool> Connected() const override {
    return plane_ ? std::optional<bool>(plane_->connected()) : std::nullopt;
  }
  void SetTraffic(const metrics::ConnectionMetrics* traffic) override { traffic_.store(traffic); }
  void SetRequests(const metrics::RequestMetrics* requests) override { requests_.store(requests); }
  void SetAgent(const NodeAgent* agent) override {
    agent_.store(agent);
    if (plane_ && agent) plane_->ReportNow();  // the first report went out before the agent was up
  }

 private:
  void FillStatus(zeromesh::v1::AgentStatus* st) const {
    if (const metrics::ConnectionMetrics* traffic = traffic_.load()) FillTraffic(*traffic, st);
    if (const metrics::RequestMetrics* requests = requests_.load()) {
      request_report_.Fill(requests->Totals(), std::chrono::steady_clock::now(), st);
    }
    const NodeAgent* agent = agent_.load();
    if (!agent) {
      st->set_health(zeromesh::v1::UNHEALTHY);
      st->add_errors("agent not ready yet (attaching interfaces, waiting for a first configuration)");
      return;
    }
    // Ask the kernel, not the manager's bookkeeping: a link detached by hand still looks fine from here.
    std::vector<bpf::LinkEvent> links;
    if (auto s = bpf::ListLinks(&links); !s.ok()) st->add_errors("cannot list interfaces: " + s.message());
    bool uplink = false;
    int broken = 0;
    for (const auto& a : bpf::CheckAttachments(agent->bpf().Attachments(), links)) {
      auto* out = st->add_attachments();
      out->set_ifname(a.ifname);
      out->set_ifindex(a.ifindex);
      out->set_attached(a.attached);
      out->set_error(a.error);
      out->set_position(a.position);
      out->set_repairs(a.repairs);
      out->set_last_repair_unix(a.last_repair_unix);
      out->set_last_repair(a.last_repair);
      out->set_hook(a.tc ? "tc" : "tcx");
      uplink = uplink || (a.role == bpf::IfaceRole::kUplink && a.attached);
      broken += !a.attached;
    }
    if (auto snap = snapshots_.Get()) {
      st->clear_enrolled_pods();  // the control plane listed them from its config; the applied snapshot decides
      for (const auto& w : snap->workloads()) {
        if (snap->IsLocal(w) && w.enrolled) st->add_enrolled_pods(w.ns + "/" + w.name);
      }
      st->set_fail_mode(snap->default_mode() == MeshMode::kStrict ? "closed" : "open");
    }
    if (!uplink) {
      st->add_errors(agent->uplinks().empty()
                         ? "no uplink found: no route to another node's pods and no default route (name it with "
                           "--uplink, chart agent.uplink)"
                         : "the uplink has no capture program attached");
    }
    st->set_health(uplink && broken == 0 && st->errors_size() == 0 ? zeromesh::v1::HEALTHY : zeromesh::v1::DEGRADED);
  }

  std::string path_;
  std::string node_;
  std::string controller_;
  SnapshotHolder& snapshots_;
  InMemoryCertStore& certs_;
  policy::PolicyHolder& policies_;
  const std::chrono::milliseconds status_interval_;
  std::unique_ptr<control::ControlPlane> plane_;
  std::atomic<const NodeAgent*> agent_{nullptr};
  std::atomic<const metrics::ConnectionMetrics*> traffic_{nullptr};
  std::atomic<const metrics::RequestMetrics*> requests_{nullptr};
  mutable RequestReport request_report_;
};

}  // namespace

std::unique_ptr<ConfigSource> MakeFileSource(std::string path, std::string node, SnapshotHolder& snapshots,
                                             InMemoryCertStore& certs) {
  return std::make_unique<FileSource>(std::move(path), std::move(node), snapshots, certs);
}

std::unique_ptr<ConfigSource> MakeControllerSource(std::string bootstrap_path, std::string node,
                                                   SnapshotHolder& snapshots, InMemoryCertStore& certs,
                                                   policy::PolicyHolder& policies,
                                                   std::chrono::milliseconds status_interval) {
  return std::make_unique<ControllerSource>(std::move(bootstrap_path), std::move(node), snapshots, certs, policies,
                                            status_interval);
}

}  // namespace zm::agent
