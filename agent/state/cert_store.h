// Certificates of the local workloads, as ready SSL_CTXs. Updatable at runtime: a rotation swaps in new contexts;
// connections already running keep the SSL (and the context it references) they started with.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/tls/context.h"

namespace zm::agent {

struct WorkloadTls {
  tls::SpiffeId id;
  bssl::UniquePtr<SSL_CTX> server_ctx;  // presented on 15008 for this workload
  bssl::UniquePtr<SSL_CTX> client_ctx;  // presented when this workload is the HBONE client
};

class CertStore {
 public:
  virtual ~CertStore() = default;
  // nullptr when there is no certificate for this identity.
  virtual std::shared_ptr<const WorkloadTls> Get(const tls::SpiffeId& id) const = 0;
};

struct IdentityMaterial {
  tls::SpiffeId id;
  tls::Credentials creds;
};

class InMemoryCertStore : public CertStore {
 public:
  std::shared_ptr<const WorkloadTls> Get(const tls::SpiffeId& id) const override;

  // Replaces the bundle and every identity, all or nothing. Each leaf must carry exactly |id| and chain to |roots|.
  bool Replace(const std::string& trust_domain, tls::CertList roots, std::vector<IdentityMaterial> identities,
               std::string* error);
  // Adds or rotates one identity under the current bundle.
  bool Update(IdentityMaterial identity, std::string* error);
  void Remove(const tls::SpiffeId& id);

  std::shared_ptr<const tls::CertList> trust_bundle() const;

 private:
  std::shared_ptr<const WorkloadTls> Build(const std::string& td, const tls::CertList& roots, const IdentityMaterial& m,
                                           std::string* error) const;

  mutable std::shared_mutex mu_;
  std::string trust_domain_;
  std::shared_ptr<const tls::CertList> roots_;
  std::unordered_map<std::string, std::shared_ptr<const WorkloadTls>> by_id_;
};

}  // namespace zm::agent
