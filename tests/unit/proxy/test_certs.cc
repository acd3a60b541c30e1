#include "tests/unit/proxy/test_certs.h"

#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <fstream>
#include <stdexcept>

namespace zm::testing {
namespace {

bssl::UniquePtr<EVP_PKEY> NewP256() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || !EC_KEY_generate_key(ec.get())) throw std::runtime_error("EC keygen");
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  EVP_PKEY_assign_EC_KEY(key.get(), ec.release());
  return key;
}

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || !X509_add_ext(cert, ext.get(), -1)) throw std::runtime_error("extension " + value);
}

bssl::UniquePtr<X509> NewCert(EVP_PKEY* pub, const std::string& cn) {
  static std::atomic<long> serial{1};
  bssl::UniquePtr<X509> cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), pub);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const uint8_t*>(cn.c_str()), -1, -1, 0);
  return cert;
}

}  // namespace

TestCa MakeCa(const std::string& cn) {
  TestCa ca;
  ca.key = NewP256();
  ca.cert = NewCert(ca.key.get(), cn);
  X509_set_issuer_name(ca.cert.get(), X509_get_subject_name(ca.cert.get()));
  AddExt(ca.cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExt(ca.cert.get(), ca.cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!X509_sign(ca.cert.get(), ca.key.get(), EVP_sha256())) throw std::runtime_error("sign CA");
  return ca;
}

tls::Credentials MakeLeaf(const TestCa& ca, const std::vector<std::string>& uris) {
  tls::Credentials c;
  c.key = NewP256();
  bssl::UniquePtr<X509> cert = NewCert(c.key.get(), "workload");
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get()));
  AddExt(cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  AddExt(cert.get(), ca.cert.get(), NID_key_usage, "critical,digitalSignature");
  AddExt(cert.get(), ca.cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  if (!uris.empty()) {
    std::string san;
    for (const auto& u : uris) san += (san.empty() ? "URI:" : ",URI:") + u;
    AddExt(cert.get(), ca.cert.get(), NID_subject_alt_name, san);
  }
  if (!X509_sign(cert.get(), ca.key.get(), EVP_sha256())) throw std::runtime_error("sign leaf");
  c.chain.push_back(std::move(cert));
  return c;
}

tls::CertList Roots(const TestCa& ca) {
  tls::CertList l;
  X509_up_ref(ca.cert.get());
  l.emplace_back(ca.cert.get());
  return l;
}

std::string WritePem(const std::string& dir, const std::string& name, const std::string& pem) {
  std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << pem;
  if (!out) throw std::runtime_error("write " + path);
  return path;
}

std::string ChainPem(const tls::Credentials& creds) {
  std::string s;
  for (const auto& c : creds.chain) s += tls::CertToPem(c.get());
  return s;
}

std::string KeyPem(const tls::Credentials& creds) {
  return tls::PrivateKeyToPem(creds.key.get());
}

}  // namespace zm::testing
