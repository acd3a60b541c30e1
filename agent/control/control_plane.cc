#include "agent/control/control_plane.h"

#include "agent/control/state_adapter.h"
#include "common/log.h"
#include "common/tls/pem.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;

ControlPlane::ControlPlane(Bootstrap bootstrap, SnapshotHolder* snapshots, InMemoryCertStore* certs, Options opts)
    : bootstrap_(std::move(bootstrap)),
      snapshots_(snapshots),
      certs_(certs),
      opts_(std::move(opts)),
      cert_manager_(
          bootstrap_, opts_.certs, [this](const IssuedIdentity& i) { OnCert(i); },
          [this](const std::string& id) { OnCertRemoved(id); }),
      config_(
          bootstrap_, [this](const ConfigState& s) { return Apply(s); }, opts_.config),
      reporter_(bootstrap_, opts_.status_interval, [this] { return Collect(); }) {}

ControlPlane::~ControlPlane() {
  Stop();
}

void ControlPlane::Start() {
  cert_manager_.Start();
  config_.Start();
  reporter_.Start();
}

void ControlPlane::Stop() {
  config_.Stop();
  cert_manager_.Stop();
  reporter_.Stop();
}

std::shared_ptr<const ConfigState> ControlPlane::config() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_;
}

std::string ControlPlane::Apply(const ConfigState& state) {
  std::string error;
  auto snap = ToMeshSnapshot(state, bootstrap_.node, &error);
  if (!snap) return error;
  tls::CertList roots;
  if (!tls::ParsePemCerts(state.trust_bundle_pem, &roots, &error)) return "trust bundle: " + error;
  if (opts_.extra_apply) {
    if (std::string e = opts_.extra_apply(state); !e.empty()) return e;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state.trust_bundle_pem != bundle_pem_ || snap->trust_domain() != trust_domain_) {
      // New roots or trust domain: rebuild every context. Identities of another trust domain are dropped and
      // re-issued through the cert manager.
      std::vector<IdentityMaterial> keep;
      for (const auto& issued : cert_manager_.All()) {
        IdentityMaterial m;
        if (ToIdentityMaterial(issued, &m, &error) && m.id.trust_domain == snap->trust_domain()) {
          keep.push_back(std::move(m));
        }
      }
      if (!certs_->Replace(snap->trust_domain(), std::move(roots), std::move(keep), &error)) {
        return "cert store: " + error;
      }
      bundle_pem_ = state.trust_bundle_pem;
      trust_domain_ = snap->trust_domain();
    }
    applied_ = std::make_shared<const ConfigState>(state);
  }
  if (bootstrap_.trust) bootstrap_.trust->SetPushedBundle(state.trust_bundle_pem);
  snapshots_->Set(snap);
  cert_manager_.SetIdentities(LocalIdentities(state, bootstrap_.node));
  cert_manager_.SetSigner(state.ca_signer);
  reporter_.ReportNow();
  return "";
}

void ControlPlane::OnCert(const IssuedIdentity& issued) {
  IdentityMaterial m;
  std::string error;
  if (!ToIdentityMaterial(issued, &m, &error)) {
    log::Error("cert: unusable material from controller", {{"id", issued.spiffe_id}, {"error", error}});
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  bool ok;
  if (bundle_pem_.empty()) {
    // A certificate can beat the first config push: take the bundle that came with it.
    tls::CertList roots;
    ok = tls::ParsePemCerts(issued.trust_bundle_pem, &roots, &error);
    std::string td = m.id.trust_domain;
    std::vector<IdentityMaterial> one;
    one.push_back(std::move(m));
    ok = ok && certs_->Replace(td, std::move(roots), std::move(one), &error);
  } else {
    ok = certs_->Update(std::move(m), &error);
  }
  if (!ok) log::Error("cert: cert store refused certificate", {{"id", issued.spiffe_id}, {"error", error}});
}

void ControlPlane::OnCertRemoved(const std::string& id) {
  tls::SpiffeId sid;
  std::string error;
  if (!tls::ParseSpiffeId(id, &sid, &error)) return;
  std::lock_guard<std::mutex> lock(mu_);
  certs_->Remove(sid);
}

v1::AgentStatus ControlPlane::Collect() {
  v1::AgentStatus s;
  s.set_agent_version(opts_.config.agent_version);
  s.set_applied_version(config_.applied_version());
  s.set_health(v1::HEALTHY);
  for (const auto& issued : cert_manager_.All()) {
    auto* c = s.add_certs();
    c->set_spiffe_id(issued.spiffe_id);
    c->set_not_after_unix(issued.not_after_unix);
    c->set_ca_signer(issued.ca_signer);
  }
  for (const auto& [id, err] : cert_manager_.Errors()) s.add_errors("cert " + id + ": " + err);
  if (auto cfg = config()) {
    for (const auto& [key, r] : cfg->resources) {
      if (r.has_workload() && r.workload().node() == bootstrap_.node && r.workload().enrolled()) {
        s.add_enrolled_pods(r.workload().namespace_() + "/" + r.workload().name());
      }
    }
  }
  if (s.errors_size() > 0) s.set_health(v1::DEGRADED);
  if (opts_.status_hook) opts_.status_hook(&s);
  return s;
}

}  // namespace zm::agent::control
