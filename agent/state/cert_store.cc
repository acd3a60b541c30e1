#include "agent/state/cert_store.h"

#include <mutex>

#include "common/tls/chain.h"

namespace zm::agent {

std::shared_ptr<const WorkloadTls> InMemoryCertStore::Get(const tls::SpiffeId& id) const {
  std::shared_lock l(mu_);
  auto it = by_id_.find(id.ToString());
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<const WorkloadTls> InMemoryCertStore::Build(const std::string& td, const tls::CertList& roots,
                                                            const IdentityMaterial& m, std::string* error) const {
  std::string prefix = m.id.ToString() + ": ";
  if (m.creds.chain.empty()) {
    *error = prefix + "empty certificate chain";
    return nullptr;
  }
  if (m.id.trust_domain != td) {
    *error = prefix + "not in trust domain " + td;
    return nullptr;
  }
  tls::SpiffeId leaf_id;
  std::string why;
  if (!tls::LeafSpiffeId(m.creds.chain[0].get(), &leaf_id, &why)) {
    *error = prefix + why;
    return nullptr;
  }
  if (!(leaf_id == m.id)) {
    *error = prefix + "certificate is for " + leaf_id.ToString();
    return nullptr;
  }
  // The leaf must verify against the bundle: catches a stale key/cert pair early.
  if (!tls::VerifyChain(m.creds.chain, roots, &why)) {
    *error = prefix + "certificate does not chain to the trust bundle: " + why;
    return nullptr;
  }
  auto out = std::make_shared<WorkloadTls>();
  out->id = m.id;
  out->server_ctx = tls::NewServerContext(m.creds, roots, td, &why);
  if (out->server_ctx) out->client_ctx = tls::NewClientContext(m.creds, roots, td, &why);
  if (!out->client_ctx) {
    *error = prefix + why;
    return nullptr;
  }
  return out;
}

bool InMemoryCertStore::Replace(const std::string& trust_domain, tls::CertList roots,
                                std::vector<IdentityMaterial> identities, std::string* error) {
  if (roots.empty()) {
    *error = "trust bundle is empty";
    return false;
  }
  std::unordered_map<std::string, std::shared_ptr<const WorkloadTls>> next;
  for (const auto& m : identities) {
    auto built = Build(trust_domain, roots, m, error);
    if (!built) return false;
    if (!next.emplace(m.id.ToString(), std::move(built)).second) {
      *error = m.id.ToString() + ": duplicate identity";
      return false;
    }
  }
  std::unique_lock l(mu_);
  trust_domain_ = trust_domain;
  roots_ = std::make_shared<const tls::CertList>(std::move(roots));
  by_id_ = std::move(next);
  return true;
}

bool InMemoryCertStore::Update(IdentityMaterial identity, std::string* error) {
  std::string td;
  std::shared_ptr<const tls::CertList> roots;
  {
    std::shared_lock l(mu_);
    td = trust_domain_;
    roots = roots_;
  }
  if (!roots) {
    *error = "no trust bundle loaded yet";
    return false;
  }
  auto built = Build(td, *roots, identity, error);
  if (!built) return false;
  std::unique_lock l(mu_);
  by_id_[identity.id.ToString()] = std::move(built);
  return true;
}

void InMemoryCertStore::Remove(const tls::SpiffeId& id) {
  std::unique_lock l(mu_);
  by_id_.erase(id.ToString());
}

std::shared_ptr<const tls::CertList> InMemoryCertStore::trust_bundle() const {
  std::shared_lock l(mu_);
  return roots_;
}

}  // namespace zm::agent
