// SSL_CTX builders for mesh mTLS: TLS 1.3 only, ECDSA P-256, ALPN "h2", no SNI, client certificate required.
// Peer verification: chain to the mesh trust bundle, then the leaf must carry exactly one URI SAN that is a valid
// SPIFFE ID in the configured trust domain. A client additionally pins the expected server identity per connection.
#pragma once

#include <openssl/base.h>
#include <openssl/ssl.h>

#include <string>
#include <string_view>

#include "common/tls/pem.h"
#include "common/tls/spiffe.h"

namespace zm::tls {

// A workload's certificate chain (leaf first) and its private key.
struct Credentials {
  CertList chain;
  bssl::UniquePtr<EVP_PKEY> key;
};

// Both return nullptr and set *error on bad material (key/cert mismatch, empty chain, ...).
bssl::UniquePtr<SSL_CTX> NewServerContext(const Credentials& creds, const CertList& roots,
                                          std::string_view trust_domain, std::string* error);
bssl::UniquePtr<SSL_CTX> NewClientContext(const Credentials& creds, const CertList& roots,
                                          std::string_view trust_domain, std::string* error);

// Client side, before the handshake: the server must present exactly this identity.
void SetExpectedPeer(SSL* ssl, const SpiffeId& id);

// After a successful handshake: the peer's verified SPIFFE ID.
bool PeerIdentity(const SSL* ssl, SpiffeId* out, std::string* error);

// Why our verification refused the peer ("" when it did not), for logs and tests.
std::string VerifyFailureReason(const SSL* ssl);

// True when ALPN settled on "h2" (the client must check; the server refuses anything else).
bool NegotiatedH2(const SSL* ssl);

// The SPIFFE ID of a leaf certificate: exactly one URI SAN, strictly parsed.
bool LeafSpiffeId(X509* cert, SpiffeId* out, std::string* error);

}  // namespace zm::tls
