// Small BoringSSL helpers for the CA: PEM in/out, P-256 keys, time conversion, extension building.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zm::ca {

bssl::UniquePtr<EVP_PKEY> GenerateP256Key();
std::string KeyToPem(EVP_PKEY* key);  // PKCS#8 PEM
std::string CertToPem(X509* cert);
bssl::UniquePtr<EVP_PKEY> KeyFromPem(std::string_view pem);
// Every certificate in the PEM text, in order; empty on any parse error.
std::vector<bssl::UniquePtr<X509>> CertsFromPem(std::string_view pem);

int64_t AsnTimeToUnix(const ASN1_TIME* t);  // INT64_MIN on error
bool IsSelfSigned(X509* cert);

// A fresh positive 127-bit random serial.
bool SetRandomSerial(X509* cert);
// Adds extension `nid` from an OpenSSL config-style value ("critical,CA:TRUE"); issuer/subject give key-id context.
bool AddExt(X509* cert, X509* issuer, int nid, const char* value);
// Adds a subjectAltName built from URIs, DNS names and IPv4/IPv6 literals.
bool AddSan(X509* cert, const std::vector<std::string>& uris, const std::vector<std::string>& dns,
            const std::vector<std::string>& ips, bool critical);

// Drains the BoringSSL error queue into one readable string.
std::string LastSslError();

}  // namespace zm::ca
