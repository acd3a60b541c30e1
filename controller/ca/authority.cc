#include "controller/ca/authority.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "common/tls/chain.h"
#include "common/tls/digest.h"
#include "controller/ca/x509_util.h"
#include "controller/fs_util.h"

namespace zm::ca {
namespace {

constexpr int64_t kRootLifetime = 10LL * 365 * 86400;
constexpr int64_t kBackdate = 5 * 60;  // tolerate clock skew between nodes

bool SetValidity(X509* cert, int64_t not_before, int64_t not_after) {
  bssl::UniquePtr<ASN1_TIME> nb(ASN1_TIME_set(nullptr, static_cast<time_t>(not_before)));
  bssl::UniquePtr<ASN1_TIME> na(ASN1_TIME_set(nullptr, static_cast<time_t>(not_after)));
  return nb && na && X509_set1_notBefore(cert, nb.get()) && X509_set1_notAfter(cert, na.get());
}

bssl::UniquePtr<X509> MakeRoot(EVP_PKEY* key) {
  bssl::UniquePtr<X509> cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), X509_VERSION_3) || !SetRandomSerial(cert.get())) return nullptr;
  X509_NAME* name = X509_get_subject_name(cert.get());
  auto add = [&](const char* f, const char* v) {
    return X509_NAME_add_entry_by_txt(name, f, MBSTRING_UTF8, reinterpret_cast<const uint8_t*>(v), -1, -1, 0);
  };
  if (!add("O", "zeromesh") || !add("CN", "zeromesh root CA")) return nullptr;
  if (!X509_set_issuer_name(cert.get(), name)) return nullptr;
  int64_t now = std::time(nullptr);
  if (!SetValidity(cert.get(), now - kBackdate, now + kRootLifetime) || !X509_set_pubkey(cert.get(), key)) {
    return nullptr;
  }
  if (!AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash")) {
    return nullptr;
  }
  if (!X509_sign(cert.get(), key, EVP_sha256())) return nullptr;
  return cert;
}

// Verifies `cert` (with the intermediates in `chain_pem`) against `roots`, at the current time.
bool ChainsTo(X509* cert, const std::string& chain_pem, const std::vector<bssl::UniquePtr<X509>>& roots,
              std::string* why) {
  // A self-signed signer that is itself in the bundle is trusted as is (roots of a rotation may share a subject name,
  // which the store's lookup by name would confuse).
  for (const auto& r : roots) {
    if (X509_cmp(r.get(), cert) == 0) return true;
  }
  std::vector<bssl::UniquePtr<X509>> chain;
  X509_up_ref(cert);
  chain.emplace_back(cert);
  for (auto& c : CertsFromPem(chain_pem)) {
    if (X509_cmp(c.get(), cert) != 0) chain.push_back(std::move(c));
  }
  return tls::VerifyChain(chain, roots, why);
}

std::string SubjectText(X509* cert) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) return "";
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string DerSha256Hex(X509* cert) {
  uint8_t* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return "";
  std::string hex = tls::Sha256Hex(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  return hex;
}

}  // namespace

std::unique_ptr<Authority> Authority::LoadOrCreate(const std::string& dir, std::string* error) {
  const std::string key_path = dir + "/root-key.pem";
  const std::string cert_path = dir + "/root-cert.pem";
  struct stat st {};
  bool have_key = ::stat(key_path.c_str(), &st) == 0;
  bool have_cert = ::stat(cert_path.c_str(), &st) == 0;
  if (have_key != have_cert) {
    *error = "CA dir " + dir + " has only one of root-key.pem / root-cert.pem; refusing to overwrite";
    return nullptr;
  }
  if (have_key) return FromFiles(cert_path, key_path, "", error);

  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = "cannot create CA dir " + dir + ": " + std::strerror(errno);
    return nullptr;
  }
  auto key = GenerateP256Key();
  auto cert = key ? MakeRoot(key.get()) : nullptr;
  if (!cert) {
    *error = "root CA generation failed: " + LastSslError();
    return nullptr;
  }
  std::string cert_pem = CertToPem(cert.get());
  // Key first: a crash between the two writes leaves a key without a cert, which the next start reports.
  if (!zm::ctrl::WriteFileAtomic(key_path, KeyToPem(key.get()), 0600, error) ||
      !zm::ctrl::WriteFileAtomic(cert_path, cert_pem, 0644, error)) {
    return nullptr;
  }
  log::Info("generated mesh root CA", {{"dir", dir}});
  auto ca = std::unique_ptr<Authority>(new Authority());
  if (!ca->Init(std::move(cert), std::move(key), "", cert_pem, error)) return nullptr;
  return ca;
}

std::unique_ptr<Authority> Authority::FromFiles(const std::string& cert_file, const std::string& key_file,
                                                const std::string& bundle_file, std::string* error) {
  auto cert_text = zm::ctrl::ReadFile(cert_file, error);
  if (!cert_text) return nullptr;
  auto key_text = zm::ctrl::ReadFile(key_file, error);
  if (!key_text) return nullptr;
  std::optional<std::string> bundle;
  if (!bundle_file.empty()) {
    bundle = zm::ctrl::ReadFile(bundle_file, error);
    if (!bundle) return nullptr;
  }
  return FromPem(*cert_text, *key_text, bundle, {cert_file, key_file, bundle_file}, error);
}

std::optional<Authority::RootPem> Authority::GenerateRootPem(std::string* error) {
  auto key = GenerateP256Key();
  auto cert = key ? MakeRoot(key.get()) : nullptr;
  if (!cert) {
    *error = "root CA generation failed: " + LastSslError();
    return std::nullopt;
  }
  return RootPem{CertToPem(cert.get()), KeyToPem(key.get())};
}

std::unique_ptr<Authority> Authority::FromPem(const std::string& cert_text, const std::string& key_text,
                                              const std::optional<std::string>& bundle, const PemNames& names,
                                              std::string* error) {
  const std::string& cert_file = names.cert;
  const std::string& key_file = names.key;
  const std::string& bundle_file = names.bundle;
  auto chain = CertsFromPem(cert_text);
  if (chain.empty()) {
    *error = cert_file + ": no valid PEM certificate";
    return nullptr;
  }
  auto key = KeyFromPem(key_text);
  if (!key) {
    *error = key_file + ": no valid PEM private key";
    ERR_clear_error();
    return nullptr;
  }
  std::string chain_pem, bundle_pem;
  for (size_t i = 1; i < chain.size(); i++) {
    if (IsSelfSigned(chain[i].get())) {
      bundle_pem += CertToPem(chain[i].get());
    } else {
      chain_pem += CertToPem(chain[i].get());
    }
  }
  bool self_signed = IsSelfSigned(chain[0].get());
  if (self_signed) bundle_pem = CertToPem(chain[0].get()) + bundle_pem;
  if (bundle) {
    const auto& b = bundle;
    if (CertsFromPem(*b).empty()) {
      *error = bundle_file + ": no valid PEM certificate";
      return nullptr;
    }
    bundle_pem = *b;
  }
  if (bundle_pem.empty()) {
    *error = cert_file + " is an intermediate: pass the root(s) with --ca-bundle";
    return nullptr;
  }
  // An intermediate's own cert is part of every issued chain.
  if (!self_signed) chain_pem = CertToPem(chain[0].get()) + chain_pem;
  auto ca = std::unique_ptr<Authority>(new Authority());
  if (!ca->Init(std::move(chain[0]), std::move(key), chain_pem, bundle_pem, error)) return nullptr;
  return ca;
}

bool Authority::Init(bssl::UniquePtr<X509> cert, bssl::UniquePtr<EVP_PKEY> key, std::string chain_pem,
                     std::string bundle_pem, std::string* error) {
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    *error = "CA key does not match the CA certificate";
    ERR_clear_error();
    return false;
  }
  if (X509_check_ca(cert.get()) == 0) {
    *error = "CA certificate is not a CA (basicConstraints CA:TRUE / keyCertSign missing)";
    return false;
  }
  not_before_ = AsnTimeToUnix(X509_get0_notBefore(cert.get()));
  not_after_ = AsnTimeToUnix(X509_get0_notAfter(cert.get()));
  if (not_after_ <= std::time(nullptr)) {
    *error = "CA certificate has expired";
    return false;
  }
  auto roots = CertsFromPem(bundle_pem);
  if (roots.empty()) {
    *error = "the trust bundle holds no valid PEM certificate";
    return false;
  }
  // A signer the bundle does not trust would issue certificates no peer accepts: refuse it rather than break the mesh
  // (e.g. a rotation step done out of order: the new root goes into the bundle before it signs).
  if (std::string why; !ChainsTo(cert.get(), chain_pem, roots, &why)) {
    *error = "the CA certificate does not chain to a root of the trust bundle (" + why +
             "); add its root to the bundle (ca.crt / --ca-bundle) first";
    return false;
  }
  for (const auto& r : roots) roots_.push_back({SubjectText(r.get()), AsnTimeToUnix(X509_get0_notAfter(r.get()))});
  signer_ = {SubjectText(cert.get()), not_after_};
  signer_id_ = DerSha256Hex(cert.get());
  cert_ = std::move(cert);
  key_ = std::move(key);
  chain_pem_ = std::move(chain_pem);
  bundle_pem_ = std::move(bundle_pem);
  return true;
}

std::optional<IssuedCert> Authority::Issue(const LeafSpec& spec, std::string* error) const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t now = std::time(nullptr);
  int64_t not_before = std::max(now - kBackdate, not_before_);
  int64_t not_after = std::min(now + spec.ttl_seconds, not_after_);  // never outlive the CA
  bssl::UniquePtr<X509> cert(X509_new());
  bool ok = cert && X509_set_version(cert.get(), X509_VERSION_3) && SetRandomSerial(cert.get()) &&
            X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) &&
            SetValidity(cert.get(), not_before, not_after) && X509_set_pubkey(cert.get(), spec.public_key) &&
            AddExt(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE") &&
            AddExt(cert.get(), cert_.get(), NID_key_usage, "critical,digitalSignature") &&
            AddExt(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
            AddExt(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid") &&
            // Empty subject, so the SAN must be critical (RFC 5280 4.2.1.6).
            AddSan(cert.get(), spec.uris, spec.dns, spec.ips, true) && X509_sign(cert.get(), key_.get(), EVP_sha256());
  if (!ok) {
    *error = "signing failed: " + LastSslError();
    return std::nullopt;
  }
  return IssuedCert{CertToPem(cert.get()) + chain_pem_, not_after};
}

}  // namespace zm::ca
