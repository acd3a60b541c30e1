#include "controller/ca/csr_check.h"

#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace zm::ca {
namespace {

CsrCheck Fail(std::string error, bool denied = false) {
  CsrCheck c;
  c.error = std::move(error);
  c.denied = denied;
  ERR_clear_error();
  return c;
}

struct ExtStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * s) const { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
};

}  // namespace

CsrCheck CheckCsr(std::string_view csr_pem, std::string_view trust_domain) {
  if (csr_pem.empty()) return Fail("empty CSR");
  if (csr_pem.size() > kMaxCsrBytes) return Fail("CSR too large");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  bssl::UniquePtr<X509_REQ> req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) return Fail("malformed CSR: expected one PEM 'CERTIFICATE REQUEST'");

  bssl::UniquePtr<EVP_PKEY> key(X509_REQ_get_pubkey(req.get()));
  if (!key) return Fail("malformed CSR: unreadable public key");
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_EC) return Fail("unsupported key: only ECDSA P-256 is accepted");
  const EC_GROUP* group = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(key.get()));
  if (group == nullptr || EC_GROUP_get_curve_name(group) != NID_X9_62_prime256v1) {
    return Fail("unsupported key: only ECDSA P-256 is accepted (wrong curve)");
  }
  if (X509_REQ_verify(req.get(), key.get()) != 1) return Fail("CSR signature is invalid");

  std::unique_ptr<STACK_OF(X509_EXTENSION), ExtStackDeleter> exts(X509_REQ_get_extensions(req.get()));
  ERR_clear_error();  // no extensions attribute is not an error here
  if (!exts) return Fail("CSR has no subjectAltName: one spiffe:// URI SAN is required");

  std::string uri;
  int san_count = 0;
  for (size_t i = 0; i < sk_X509_EXTENSION_num(exts.get()); i++) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (nid == NID_basic_constraints) {
      auto* bc = static_cast<BASIC_CONSTRAINTS*>(X509V3_EXT_d2i(ext));
      if (bc == nullptr) return Fail("malformed basicConstraints extension");
      bool is_ca = bc->ca != 0;
      BASIC_CONSTRAINTS_free(bc);
      if (is_ca) return Fail("CA basic constraint requested: workload certificates are never CAs");
    } else if (nid == NID_subject_alt_name) {
      if (++san_count > 1) return Fail("duplicate subjectAltName extension");
      auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
      if (names == nullptr) return Fail("malformed subjectAltName extension");
      size_t n = sk_GENERAL_NAME_num(names);
      std::string err;
      for (size_t j = 0; j < n && err.empty(); j++) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, j);
        if (gn->type != GEN_URI) {
          err = "extra SANs: only one spiffe:// URI SAN is allowed (found a DNS/IP/email/other name)";
        } else if (!uri.empty()) {
          err = "extra SANs: exactly one URI SAN is allowed";
        } else {
          const ASN1_STRING* s = gn->d.uniformResourceIdentifier;
          uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
          if (uri.empty()) err = "empty URI SAN";
        }
      }
      GENERAL_NAMES_free(names);
      if (!err.empty()) return Fail(err);
    }
  }
  if (uri.empty()) return Fail("CSR has no URI SAN: one spiffe:// URI SAN is required");

  std::string why;
  tls::SpiffeId id;
  if (!tls::ParseSpiffeId(uri, &id, &why)) return Fail("bad SPIFFE ID '" + uri + "': " + why);
  if (id.trust_domain != trust_domain) {
    return Fail("SPIFFE ID '" + uri + "' is not in trust domain '" + std::string(trust_domain) + "'", true);
  }
  CsrCheck ok;
  ok.ok = true;
  ok.public_key = std::move(key);
  ok.id = std::move(id);
  return ok;
}

}  // namespace zm::ca
