#include "common/tls/context.h"

#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <mutex>

namespace zm::tls {
namespace {

constexpr uint8_t kAlpnH2[] = {2, 'h', '2'};

template <typename T>
void FreeExData(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*index*/, long /*argl*/, void* /*argp*/) {
  delete static_cast<T*>(ptr);
}

// ex_data slots: trust domain on the SSL_CTX; expected peer and failure reason on each SSL.
struct ExIndexes {
  int ctx_trust_domain;
  int ssl_expected_peer;
  int ssl_failure;
};

const ExIndexes& Indexes() {
  static const ExIndexes idx = [] {
    ExIndexes i;
    i.ctx_trust_domain = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeExData<std::string>);
    i.ssl_expected_peer = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeExData<SpiffeId>);
    i.ssl_failure = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeExData<std::string>);
    return i;
  }();
  return idx;
}

void SetFailure(SSL* ssl, std::string reason) {
  auto* old = static_cast<std::string*>(SSL_get_ex_data(ssl, Indexes().ssl_failure));
  if (old != nullptr) {
    *old = std::move(reason);
  } else {
    SSL_set_ex_data(ssl, Indexes().ssl_failure, new std::string(std::move(reason)));
  }
}

bool IsP256(EVP_PKEY* key) {
  const EC_KEY* ec = key ? EVP_PKEY_get0_EC_KEY(key) : nullptr;
  return ec != nullptr && EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) == NID_X9_62_prime256v1;
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  int depth = X509_STORE_CTX_get_error_depth(store);
  if (!preverify_ok) {
    int err = X509_STORE_CTX_get_error(store);
    SetFailure(ssl, std::string("certificate chain at depth ") + std::to_string(depth) + ": " +
                        X509_verify_cert_error_string(err));
    return 0;
  }
  if (depth != 0) return 1;
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  auto fail = [&](std::string reason) {
    SetFailure(ssl, std::move(reason));
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  };
  bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey(leaf));
  if (!IsP256(pub.get())) return fail("peer leaf key is not ECDSA P-256");
  if (X509_check_ca(leaf) != 0) return fail("peer leaf certificate is a CA");
  SpiffeId id;
  std::string why;
  if (!LeafSpiffeId(leaf, &id, &why)) return fail("peer certificate: " + why);
  const auto* td =
      static_cast<const std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), Indexes().ctx_trust_domain));
  if (td == nullptr || id.trust_domain != *td) {
    return fail("peer identity " + id.ToString() + " is not in trust domain " + (td ? *td : std::string("?")));
  }
  const auto* expected = static_cast<const SpiffeId*>(SSL_get_ex_data(ssl, Indexes().ssl_expected_peer));
  if (expected != nullptr && !(id == *expected)) {
    return fail("peer identity " + id.ToString() + " is not the expected " + expected->ToString());
  }
  return 1;
}

int AlpnSelect(SSL* /*ssl*/, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len, void*) {
  // Walk the client's length-prefixed list looking for "h2".
  for (unsigned i = 0; i < in_len;) {
    unsigned len = in[i];
    if (i + 1 + len > in_len) break;
    if (len == 2 && std::memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *out_len = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

bssl::UniquePtr<SSL_CTX> NewContext(bool server, const Credentials& creds, const CertList& roots,
                                    std::string_view trust_domain, std::string* error) {
  std::string why;
  if (!ValidTrustDomain(trust_domain, &why)) {
    *error = why;
    return nullptr;
  }
  if (creds.chain.empty() || !creds.key) {
    *error = "credentials need a certificate chain and a private key";
    return nullptr;
  }
  if (!IsP256(creds.key.get())) {
    *error = "private key is not ECDSA P-256";
    return nullptr;
  }
  if (roots.empty()) {
    *error = "trust bundle is empty";
    return nullptr;
  }
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    *error = "SSL_CTX_new: " + DrainErrors();
    return nullptr;
  }
  static const uint16_t kSigAlgs[] = {SSL_SIGN_ECDSA_SECP256R1_SHA256};
  if (!SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) ||
      !SSL_CTX_set_signing_algorithm_prefs(ctx.get(), kSigAlgs, 1) ||
      !SSL_CTX_set_verify_algorithm_prefs(ctx.get(), kSigAlgs, 1)) {
    *error = "configuring TLS 1.3 / ECDSA P-256: " + DrainErrors();
    return nullptr;
  }
  if (!SSL_CTX_use_certificate(ctx.get(), creds.chain[0].get()) ||
      !SSL_CTX_use_PrivateKey(ctx.get(), creds.key.get()) || !SSL_CTX_check_private_key(ctx.get())) {
    *error = "certificate does not match private key: " + DrainErrors();
    return nullptr;
  }
  for (size_t i = 1; i < creds.chain.size(); ++i) {
    if (!SSL_CTX_add1_chain_cert(ctx.get(), creds.chain[i].get())) {
      *error = "adding intermediate certificate: " + DrainErrors();
      return nullptr;
    }
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& root : roots) {
    if (!X509_STORE_add_cert(store, root.get())) {
      *error = "adding trust bundle certificate: " + DrainErrors();
      return nullptr;
    }
  }
  SSL_CTX_set_ex_data(ctx.get(), Indexes().ctx_trust_domain, new std::string(trust_domain));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, VerifyCallback);
  // Partial writes + moving buffers: the proxy writes from ring buffers that may compact between retries.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx.get(), AlpnSelect, nullptr);
  } else if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof(kAlpnH2)) != 0) {
    *error = "setting ALPN: " + DrainErrors();
    return nullptr;
  }
  return ctx;
}

}  // namespace

bssl::UniquePtr<SSL_CTX> NewServerContext(const Credentials& creds, const CertList& roots,
                                          std::string_view trust_domain, std::string* error) {
  return NewContext(true, creds, roots, trust_domain, error);
}

bssl::UniquePtr<SSL_CTX> NewClientContext(const Credentials& creds, const CertList& roots,
                                          std::string_view trust_domain, std::string* error) {
  return NewContext(false, creds, roots, trust_domain, error);
}

void SetExpectedPeer(SSL* ssl, const SpiffeId& id) {
  auto* old = static_cast<SpiffeId*>(SSL_get_ex_data(ssl, Indexes().ssl_expected_peer));
  if (old != nullptr) {
    *old = id;
  } else {
    SSL_set_ex_data(ssl, Indexes().ssl_expected_peer, new SpiffeId(id));
  }
}

bool PeerIdentity(const SSL* ssl, SpiffeId* out, std::string* error) {
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl));
  if (!peer) {
    *error = "peer sent no certificate";
    return false;
  }
  return LeafSpiffeId(peer.get(), out, error);
}

std::string VerifyFailureReason(const SSL* ssl) {
  const auto* s = static_cast<const std::string*>(SSL_get_ex_data(ssl, Indexes().ssl_failure));
  return s ? *s : std::string();
}

bool NegotiatedH2(const SSL* ssl) {
  const uint8_t* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &len);
  return len == 2 && std::memcmp(proto, "h2", 2) == 0;
}

bool LeafSpiffeId(X509* cert, SpiffeId* out, std::string* error) {
  int crit = 0;
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  if (!names) {
    *error = "certificate has no subjectAltName";
    return false;
  }
  const ASN1_STRING* uri = nullptr;
  size_t count = 0;
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_URI) {
      ++count;
      uri = gn->d.uniformResourceIdentifier;
    }
  }
  if (count != 1) {
    *error = "certificate must have exactly one URI SAN, has " + std::to_string(count);
    return false;
  }
  std::string_view s(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)), ASN1_STRING_length(uri));
  if (s.find('\0') != std::string_view::npos) {
    *error = "URI SAN contains a NUL byte";
    return false;
  }
  return ParseSpiffeId(s, out, error);
}

}  // namespace zm::tls
