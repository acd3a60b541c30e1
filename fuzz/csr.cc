// The CSR an agent sends the controller's CA (IdentityService::Sign -> ca::CheckCsr, controller/ca/csr_check.h): any
// authenticated agent, or whoever stole its token, controls every byte of it. Then, for an accepted CSR, what the
// controller does next: ca::Authority::Issue with the CSR's key and SPIFFE ID.
// Besides "no crash, no leak, no UB", it checks what CheckCsr promises: an accepted CSR has a P-256 key and a SPIFFE ID
// in the asked trust domain that survives a round trip, and the leaf issued for it is one agents accept (one URI SAN,
// the same ID); a refusal always says why.
// Input: one flag byte, then the CSR. Flags (seeds use printable ones: '0' PEM, '4' DER, '<' DER re-signed):
//   bits 0-1  trust domain: 0 cluster.local, 1 example.org, 2 "" (none), 3 the next byte is a length, then the domain
//   bit 2     the rest is DER: wrapped in a PEM "CERTIFICATE REQUEST" block here, so mutations reach the DER parser
//   bit 3     (with bit 2) a DER that parses as a request is re-signed with a fixed P-256 key first, so mutated
//             extensions get past the signature check and reach the SAN / basicConstraints logic
#include <openssl/base64.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/tls/context.h"
#include "common/tls/pem.h"
#include "common/tls/spiffe.h"
#include "controller/ca/authority.h"
#include "controller/ca/csr_check.h"

namespace {

struct Fixture {
  std::unique_ptr<zm::ca::Authority> ca;
  bssl::UniquePtr<EVP_PKEY> resign_key;
};

const Fixture& Get() {
  static const Fixture* f = [] {
    auto* x = new Fixture;
    std::string error;
    auto root = zm::ca::Authority::GenerateRootPem(&error);
    if (root) x->ca = zm::ca::Authority::FromPem(root->cert_pem, root->key_pem, std::nullopt, {}, &error);
    bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
    if (!x->ca || !ec || !EC_KEY_generate_key(ec.get())) std::abort();
    x->resign_key.reset(EVP_PKEY_new());
    EVP_PKEY_assign_EC_KEY(x->resign_key.get(), ec.release());
    return x;
  }();
  return *f;
}

std::string Pem(std::string_view der) {
  size_t len = 0;
  if (!EVP_EncodedLength(&len, der.size())) std::abort();
  std::string b64(len, '\0');
  size_t n =
      EVP_EncodeBlock(reinterpret_cast<uint8_t*>(b64.data()), reinterpret_cast<const uint8_t*>(der.data()), der.size());
  b64.resize(n);
  std::string out = "-----BEGIN CERTIFICATE REQUEST-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END CERTIFICATE REQUEST-----\n";
}

// The request's subject and attributes (the extension request among them), with `key` as its public key and signed
// by it; `der` unchanged when it does not parse. A fresh X509_REQ: BoringSSL would re-sign a parsed one's cached
// encoding.
std::string Resign(std::string_view der, EVP_PKEY* key) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
  bssl::UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  bssl::UniquePtr<X509_REQ> fresh(X509_REQ_new());
  bool ok = req && fresh && X509_REQ_set_version(fresh.get(), X509_REQ_VERSION_1) &&
            X509_REQ_set_subject_name(fresh.get(), X509_REQ_get_subject_name(req.get()));
  for (int i = 0; ok && i < X509_REQ_get_attr_count(req.get()); i++) {
    ok = X509_REQ_add1_attr(fresh.get(), X509_REQ_get_attr(req.get(), i));
  }
  uint8_t* out = nullptr;
  int n = -1;
  if (ok && X509_REQ_set_pubkey(fresh.get(), key) && X509_REQ_sign(fresh.get(), key, EVP_sha256()) > 0) {
    n = i2d_X509_REQ(fresh.get(), &out);
  }
  ERR_clear_error();
  if (n <= 0) return std::string(der);
  std::string s(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixture& fx = Get();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const uint8_t flags = data[0];
  in.remove_prefix(1);
  static const char* kDomains[] = {"cluster.local", "example.org", ""};
  std::string td;
  if ((flags & 3) != 3) {
    td = kDomains[flags & 3];
  } else {
    if (in.empty()) return 0;
    size_t n = std::min<size_t>(static_cast<uint8_t>(in[0]), in.size() - 1);
    td.assign(in.substr(1, n));
    in.remove_prefix(1 + n);
  }
  std::string csr(in);
  if (flags & 4) csr = Pem((flags & 8) ? Resign(in, fx.resign_key.get()) : csr);

  zm::ca::CsrCheck c = zm::ca::CheckCsr(csr, td);
  if (!c.ok) {
    if (c.error.empty() || c.public_key) std::abort();
    return 0;
  }
  if (!c.error.empty() || c.denied || !c.public_key) std::abort();
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(c.public_key.get());
  if (ec == nullptr || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != NID_X9_62_prime256v1) std::abort();
  if (c.id.trust_domain != td) std::abort();
  zm::tls::SpiffeId again;
  std::string why;
  if (!zm::tls::ParseSpiffeId(c.id.ToString(), &again, &why) || !(again == c.id)) std::abort();

  // What the CA then signs must be what the data plane accepts.
  zm::ca::LeafSpec spec;
  spec.public_key = c.public_key.get();
  spec.uris = {c.id.ToString()};
  spec.ttl_seconds = 3600;
  auto issued = fx.ca->Issue(spec, &why);
  if (!issued) std::abort();
  zm::tls::CertList chain;
  if (!zm::tls::ParsePemCerts(issued->chain_pem, &chain, &why)) std::abort();
  zm::tls::SpiffeId leaf_id;
  if (!zm::tls::LeafSpiffeId(chain.front().get(), &leaf_id, &why) || !(leaf_id == c.id)) std::abort();
  return 0;
}
