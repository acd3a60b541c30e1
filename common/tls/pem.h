// PEM loading (BoringSSL only): certificate chains, private keys, trust bundles.
#pragma once

#include <openssl/base.h>
#include <openssl/x509.h>

#include <string>
#include <string_view>
#include <vector>

namespace zm::tls {

using CertList = std::vector<bssl::UniquePtr<X509>>;

// Reads a whole file; on failure sets *error to "<path>: <strerror>".
bool ReadFile(const std::string& path, std::string* out, std::string* error);

// Parses every CERTIFICATE block of |pem| in order (leaf first for chains). At least one is required.
bool ParsePemCerts(std::string_view pem, CertList* out, std::string* error);

// Parses one private key; it must be ECDSA P-256 (the only key type the mesh uses).
bool ParsePemPrivateKey(std::string_view pem, bssl::UniquePtr<EVP_PKEY>* out, std::string* error);

// PEM encoders (used by tests and by the cert manager to write material).
std::string CertToPem(X509* cert);
std::string PrivateKeyToPem(EVP_PKEY* key);

// Drains BoringSSL's thread-local error queue into one readable string.
std::string DrainErrors();

}  // namespace zm::tls
