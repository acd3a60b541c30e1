#include "agent/control/csr.h"

#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/tls/pem.h"

namespace zm::agent::control {

bool GenerateKeyAndCsr(const std::string& spiffe_id, KeyAndCsr* out, std::string* error) {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!ec || !key || !EC_KEY_generate_key(ec.get()) || !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    *error = "key generation failed: " + tls::DrainErrors();
    return false;
  }
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  GENERAL_NAME* gn = GENERAL_NAME_new();
  ASN1_IA5STRING* uri = ASN1_IA5STRING_new();
  bool ok = req && names && gn && uri && ASN1_STRING_set(uri, spiffe_id.data(), static_cast<int>(spiffe_id.size()));
  if (ok) {
    GENERAL_NAME_set0_value(gn, GEN_URI, uri);
    uri = nullptr;
    ok = sk_GENERAL_NAME_push(names, gn) != 0;
    if (ok) gn = nullptr;
  }
  STACK_OF(X509_EXTENSION)* exts = nullptr;
  ok = ok && X509V3_add1_i2d(&exts, NID_subject_alt_name, names, 1, X509V3_ADD_DEFAULT) == 1;
  ok = ok && X509_REQ_set_version(req.get(), 0) && X509_REQ_set_pubkey(req.get(), key.get()) &&
       X509_REQ_add_extensions(req.get(), exts) && X509_REQ_sign(req.get(), key.get(), EVP_sha256());
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  GENERAL_NAMES_free(names);
  GENERAL_NAME_free(gn);
  ASN1_IA5STRING_free(uri);
  if (!ok) {
    *error = "CSR construction failed: " + tls::DrainErrors();
    return false;
  }
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (!bio || !PEM_write_bio_X509_REQ(bio.get(), req.get()) || !BIO_mem_contents(bio.get(), &data, &len)) {
    *error = "CSR encoding failed: " + tls::DrainErrors();
    return false;
  }
  out->csr_pem.assign(reinterpret_cast<const char*>(data), len);
  out->key_pem = tls::PrivateKeyToPem(key.get());
  out->key = std::move(key);
  return true;
}

}  // namespace zm::agent::control
