// Workload certificates for the identities this node needs: key generated here, CSR -> Identity.Sign, kept in
// memory, renewed at half-life (configurable), retried with backoff on failure.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/control/backoff.h"
#include "agent/control/bootstrap.h"
#include "zeromesh/v1/identity.grpc.pb.h"

namespace zm::agent::control {

struct IssuedIdentity {
  std::string spiffe_id;
  std::string cert_chain_pem;  // leaf first
  std::string key_pem;
  std::string trust_bundle_pem;
  std::string ca_signer;  // which CA signer issued it (SignResponse.ca_signer)
  int64_t not_after_unix = 0;
};

class CertManager {
 public:
  using UpdateFn = std::function<void(const IssuedIdentity&)>;  // new or rotated certificate
  using RemoveFn = std::function<void(const std::string& spiffe_id)>;

  struct Options {
    uint32_t ttl_seconds = 0;     // 0: the mesh default
    double renew_fraction = 0.5;  // renew after this fraction of the lifetime
    std::chrono::milliseconds initial_retry{500};
    std::chrono::milliseconds max_retry{30000};
    std::chrono::milliseconds resign_spread{2000};
  };

  CertManager(Bootstrap bootstrap, Options opts, UpdateFn on_update, RemoveFn on_remove);
  ~CertManager();

  void Start();
  void Stop();

  // The identities wanted now (spiffe IDs of the local enrolled workloads). Dropped ones are removed.
  void SetIdentities(const std::set<std::string>& ids);
  // The CA's signer now (from the config push). Certificates issued by another signer are re-issued at once (spread
  // over `opts.resign_spread`), so a rotated CA's old root can leave the bundle without a failed connection.
  void SetSigner(const std::string& signer);
  std::optional<IssuedIdentity> Get(const std::string& spiffe_id) const;
  std::vector<IssuedIdentity> All() const;
  // Last failure per identity (empty when fine), for status reports.
  std::map<std::string, std::string> Errors() const;
  uint64_t issued_count() const;

 private:
  struct Entry {
    std::optional<IssuedIdentity> current;
    std::chrono::steady_clock::time_point due;  // next attempt (issue, renew or retry)
    std::unique_ptr<Backoff> backoff;
    std::string error;
  };
  void Run();
  bool Issue(const std::string& id, IssuedIdentity* out, std::string* error);

  const Bootstrap bootstrap_;
  const Options opts_;
  const UpdateFn on_update_;
  const RemoveFn on_remove_;
  std::unique_ptr<zeromesh::v1::Identity::Stub> stub_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> removed_;  // to report through on_remove_
  bool stop_ = false;
  grpc::ClientContext* active_ = nullptr;  // the signing call in flight; Stop() cancels it (guarded by mu_)
  std::string signer_;
  uint64_t issued_ = 0;
  std::thread thread_;
};

}  // namespace zm::agent::control
