#include "controller/ca/x509_util.h"

#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <climits>
#include <ctime>

namespace zm::ca {

bssl::UniquePtr<EVP_PKEY> GenerateP256Key() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!ec || !key || !EC_KEY_generate_key(ec.get()) || !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    return nullptr;
  }
  return key;
}

namespace {
std::string BioToString(BIO* bio) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (!BIO_mem_contents(bio, &data, &len)) return {};
  return std::string(reinterpret_cast<const char*>(data), len);
}
}  // namespace

std::string KeyToPem(EVP_PKEY* key) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) return {};
  return BioToString(bio.get());
}

std::string CertToPem(X509* cert) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), cert)) return {};
  return BioToString(bio.get());
}

bssl::UniquePtr<EVP_PKEY> KeyFromPem(std::string_view pem) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return bssl::UniquePtr<EVP_PKEY>(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::vector<bssl::UniquePtr<X509>> CertsFromPem(std::string_view pem) {
  std::vector<bssl::UniquePtr<X509>> out;
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return out;
  while (true) {
    bssl::UniquePtr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  // End of input shows up as PEM_R_NO_START_LINE; anything else is a broken certificate.
  uint32_t err = ERR_peek_last_error();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) out.clear();
  ERR_clear_error();
  return out;
}

int64_t AsnTimeToUnix(const ASN1_TIME* t) {
  if (t == nullptr) return INT64_MIN;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, secs = 0;
  if (!epoch || !ASN1_TIME_diff(&days, &secs, epoch.get(), t)) return INT64_MIN;
  return static_cast<int64_t>(days) * 86400 + secs;
}

bool IsSelfSigned(X509* cert) {
  if (X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) != 0) return false;
  bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey(cert));
  bool ok = pub && X509_verify(cert, pub.get()) == 1;
  ERR_clear_error();
  return ok;
}

bool SetRandomSerial(X509* cert) {
  bssl::UniquePtr<BIGNUM> bn(BN_new());
  if (!bn || !BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) return false;
  bssl::UniquePtr<ASN1_INTEGER> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  return serial && X509_set_serialNumber(cert, serial.get());
}

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1);
}

bool AddSan(X509* cert, const std::vector<std::string>& uris, const std::vector<std::string>& dns,
            const std::vector<std::string>& ips, bool critical) {
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  if (names == nullptr) return false;
  bool ok = true;
  auto push_str = [&](int type, const std::string& v) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (gn == nullptr || s == nullptr || !ASN1_STRING_set(s, v.data(), static_cast<int>(v.size()))) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(s);
      ok = false;
      return;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    if (!sk_GENERAL_NAME_push(names, gn)) {
      GENERAL_NAME_free(gn);
      ok = false;
    }
  };
  for (const auto& u : uris) push_str(GEN_URI, u);
  for (const auto& d : dns) push_str(GEN_DNS, d);
  for (const auto& ip : ips) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_OCTET_STRING* addr = a2i_IPADDRESS(ip.c_str());
    if (gn == nullptr || addr == nullptr) {
      GENERAL_NAME_free(gn);
      ASN1_OCTET_STRING_free(addr);
      ok = false;
      continue;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, addr);
    if (!sk_GENERAL_NAME_push(names, gn)) {
      GENERAL_NAME_free(gn);
      ok = false;
    }
  }
  ok = ok && X509_add1_ext_i2d(cert, NID_subject_alt_name, names, critical ? 1 : 0, X509V3_ADD_REPLACE) == 1;
  GENERAL_NAMES_free(names);
  return ok;
}

std::string LastSslError() {
  std::string out;
  while (uint32_t err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

}  // namespace zm::ca
