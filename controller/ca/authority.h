// The mesh CA: a root generated on first start (persisted in --ca-dir) or a user-supplied intermediate.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace zm::ca {

struct LeafSpec {
  EVP_PKEY* public_key = nullptr;
  std::vector<std::string> uris;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  int64_t ttl_seconds = 86400;
};

struct IssuedCert {
  std::string chain_pem;  // leaf + intermediates
  int64_t not_after_unix = 0;
};

class Authority {
 public:
  // Loads <dir>/root-key.pem and <dir>/root-cert.pem; generates and persists them (key 0600) if neither exists.
  static std::unique_ptr<Authority> LoadOrCreate(const std::string& dir, std::string* error);
  // Bring your own CA: `cert_file` = signing cert, optionally followed by its chain; `bundle_file` = trusted
  // roots (optional when the chain ends in a self-signed root).
  static std::unique_ptr<Authority> FromFiles(const std::string& cert_file, const std::string& key_file,
                                              const std::string& bundle_file, std::string* error);

  // The same from PEM text (e.g. a Kubernetes Secret); `names` only label error messages.
  struct PemNames {
    std::string cert, key, bundle;
  };
  static std::unique_ptr<Authority> FromPem(const std::string& cert_pem, const std::string& key_pem,
                                            const std::optional<std::string>& bundle_pem, const PemNames& names,
                                            std::string* error);
  // A new self-signed root (ECDSA P-256, 10 years), for a caller that persists it elsewhere.
  struct RootPem {
    std::string cert_pem, key_pem;
  };
  static std::optional<RootPem> GenerateRootPem(std::string* error);

  // Issues a leaf (CA:false, digitalSignature, serverAuth+clientAuth, SAN critical, empty subject).
  std::optional<IssuedCert> Issue(const LeafSpec& spec, std::string* error) const;

  const std::string& trust_bundle_pem() const { return bundle_pem_; }
  int64_t not_after_unix() const { return not_after_; }
  // SHA-256 (hex) of the signing certificate: names "the CA that signs now" in config pushes and agent status, so a
  // certificate from an earlier signer is re-issued at once after a rotation.
  const std::string& signer_id() const { return signer_id_; }
  struct CertSummary {
    std::string subject;
    int64_t not_after_unix = 0;
  };
  const CertSummary& signer() const { return signer_; }
  const std::vector<CertSummary>& roots() const { return roots_; }
  // Same signer, chain and trust bundle: a reload that changed nothing.
  bool SameAs(const Authority& other) const {
    return signer_id_ == other.signer_id_ && chain_pem_ == other.chain_pem_ && bundle_pem_ == other.bundle_pem_;
  }

 private:
  Authority() = default;
  bool Init(bssl::UniquePtr<X509> cert, bssl::UniquePtr<EVP_PKEY> key, std::string chain_pem, std::string bundle_pem,
            std::string* error);

  mutable std::mutex mu_;  // X509 objects cache parsed extensions lazily
  bssl::UniquePtr<X509> cert_;
  bssl::UniquePtr<EVP_PKEY> key_;
  std::string chain_pem_;  // signing cert + its intermediates, excluding self-signed roots
  std::string bundle_pem_;
  int64_t not_before_ = 0;
  int64_t not_after_ = 0;
  std::string signer_id_;
  CertSummary signer_;
  std::vector<CertSummary> roots_;
};

}  // namespace zm::ca
