// The controller's TLS serving certificate. It is not a workload, so it carries DNS names (and loopback IPs) only,
// never a SPIFFE ID that a peer could mistake for a mesh identity. Issued by the mesh CA for at most the maximum
// certificate TTL, written to a private directory that gRPC's file-watching certificate provider re-reads, and renewed
// in place at half-life or as soon as the CA's signer changes: new handshakes get the new certificate while
// established agent streams stay up.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/ca/reloading_authority.h"

namespace zm::ctrl {

class ServingCert {
 public:
  struct Spec {
    std::vector<std::string> dns;
    std::vector<std::string> ips;
    int64_t ttl_seconds = 86400;
    std::string dir;  // "": a private temporary directory, removed by Stop()
  };
  ServingCert(const ca::ReloadingAuthority* ca, Spec spec) : ca_(ca), spec_(std::move(spec)) {}
  ~ServingCert();

  bool Init(std::string* error);  // creates the directory (0700) and writes the first certificate
  void Start();                   // the renewal thread
  void RenewNow();                // the CA changed: re-issue at once
  void Stop();

  std::string key_path() const { return dir_ + "/tls.key"; }
  std::string cert_path() const { return dir_ + "/tls.crt"; }
  int64_t not_after_unix() const;
  uint64_t renewals() const;

 private:
  bool Issue(std::string* error);
  void Run();

  const ca::ReloadingAuthority* ca_;
  const Spec spec_;
  std::string dir_;
  bool owns_dir_ = false;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t not_after_ = 0;
  int64_t renew_at_ = 0;  // unix seconds
  uint64_t renewals_ = 0;
  bool renew_now_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zm::ctrl
