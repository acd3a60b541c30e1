#include "agent/node/observability.h"

#include <chrono>

#include "agent/admin/cert_info.h"
#include "agent/admin/config_dump.h"
#include "agent/metrics/sockmap_metrics.h"
#include "agent/traffic/dump.h"
#include "common/log.h"

namespace zm::agent {
namespace {

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr bpf::ListenerSlot kSlots[] = {bpf::ListenerSlot::kOutbound, bpf::ListenerSlot::kHbone,
                                        bpf::ListenerSlot::kPlaintext};

}  // namespace

Observability::Observability(ObservabilityOptions opts)
    : opts_(std::move(opts)), telemetry_(std::make_shared<metrics::Telemetry>(hub_, opts_.telemetry)) {}

Observability::~Observability() {
  Stop();
}

void Observability::Start(const NodeAgent& agent, const SnapshotHolder& snapshots, const CertStore& certs) {
  agent_ = &agent;
  snapshots_ = &snapshots;
  certs_ = &certs;
  hub_.Add(std::make_shared<metrics::CallbackCollector>([this] { return metrics::HealthFamilies(Health()); }));
  hub_.Add(std::make_shared<metrics::CallbackCollector>([this] {
    bpf::SockmapStats st;
    const bool on = agent_->sockmap().ready() && agent_->sockmap().Stats(&st).ok();
    return metrics::SockmapFamilies(agent_->sockmap_requested(), on, st, agent_->sockmap().proxy_add_errors());
  }));
  admin::AdminSources src;
  src.metrics = [this] { return hub_.Render(); };
  src.readiness = [this] { return Readiness(); };
  src.certs = [this] { return admin::CertsJson(admin::LocalCerts(snapshots_->Get().get(), *certs_, NowUnix())); };
  src.config_dump = [this] {
    auto snap = snapshots_->Get();
    admin::ConfigDumpInput in;
    in.snapshot = snap.get();
    in.config_version = Health().config_version;
    in.identities = admin::LocalCerts(snap.get(), *certs_, NowUnix());
    in.attachments = agent_->bpf().Attachments();
    bpf::CaptureStats st;
    if (agent_->bpf().Stats(&st).ok()) in.capture = st;
    for (int i = 0; i < 3; ++i) {
      in.listeners[i] = agent_->bpf().HasListener(kSlots[i], AF_INET);
      in.listeners6[i] = agent_->bpf().HasListener(kSlots[i], AF_INET6);
    }
    in.pin_dir = agent_->bpf().PinDir();
    in.ready = Readiness().ready();
    if (snap) in.services = traffic::ServicesJson(*snap, agent_->balancer(), agent_->limiter());
    return admin::ConfigDump(in);
  };
  admin_ = std::make_unique<admin::AdminServer>(opts_.admin, std::move(src));
  std::string error;
  if (!admin_->Start(&error)) {
    log::Error("admin endpoints unavailable", {{"error", error}});
  }
  log::Info("admin endpoints", {{"health_addr", opts_.admin.health_addr},
                                {"health_port", admin_->health_port()},
                                {"metrics_addr", opts_.admin.metrics_addr},
                                {"metrics_port", admin_->metrics_port()},
                                {"admin_addr", opts_.admin.admin_addr},
                                {"admin_port", admin_->admin_port()}});
}

void Observability::StopEndpoints() {
  if (admin_) admin_->Stop();
}

void Observability::Stop() {
  StopEndpoints();
  telemetry_->access_log().Flush();
}

// Three per family the node captures: IPv4, and IPv6 unless the node has none.
uint64_t Observability::ListenersExpected() const {
  return agent_->ipv6_capture() ? 6 : 3;
}

uint64_t Observability::ListenersInSockmap() const {
  uint64_t n = 0;
  for (int family : {AF_INET, AF_INET6}) {
    if (family == AF_INET6 && !agent_->ipv6_capture()) continue;
    for (auto slot : kSlots) n += agent_->bpf().HasListener(slot, family) ? 1 : 0;
  }
  return n;
}

admin::Readiness Observability::Readiness() const {
  admin::Readiness r;
  if (!agent_) return r;
  for (const auto& a : agent_->bpf().Attachments()) r.uplink_attached |= a.role == bpf::IfaceRole::kUplink;
  r.listeners_in_sockmap = ListenersInSockmap() == ListenersExpected();
  r.config_applied = agent_->snapshots_applied() > 0 && snapshots_->Get() != nullptr;
  r.links_synced = links_synced_;
  return r;
}

metrics::AgentHealth Observability::Health() const {
  metrics::AgentHealth h;
  if (!agent_) return h;
  h.ready = Readiness().ready();
  for (const auto& a : agent_->bpf().Attachments()) {
    (a.role == bpf::IfaceRole::kUplink ? h.uplink_programs : h.pod_veth_programs)++;
  }
  h.listeners_in_sockmap = ListenersInSockmap();
  h.listeners_expected = ListenersExpected();
  auto snap = snapshots_->Get();
  if (snap) {
    for (const auto& w : snap->workloads()) h.local_pods += snap->IsLocal(w) ? 1 : 0;
  }
  h.config_version = opts_.config_version ? opts_.config_version() : agent_->snapshots_applied();
  h.soonest_cert_expiry_seconds = admin::SoonestExpirySeconds(admin::LocalCerts(snap.get(), *certs_, NowUnix()));
  if (opts_.controller_connected) h.controller_connected = opts_.controller_connected();
  bpf::CaptureStats st;
  if (agent_->bpf().Stats(&st).ok()) h.capture = st;
  h.proxy = agent_->proxy_stats();
  return h;
}

}  // namespace zm::agent
