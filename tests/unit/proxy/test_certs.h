// Test-only PKI built in memory with BoringSSL: CAs and SPIFFE leaves with arbitrary URI SANs.
#pragma once

#include <openssl/base.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

#include "common/tls/context.h"

namespace zm::testing {

struct TestCa {
  bssl::UniquePtr<EVP_PKEY> key;
  bssl::UniquePtr<X509> cert;
};

TestCa MakeCa(const std::string& cn);
// A leaf signed by |ca| with these URI SANs (none, one, several); always a P-256 key.
tls::Credentials MakeLeaf(const TestCa& ca, const std::vector<std::string>& uris);
tls::CertList Roots(const TestCa& ca);

// Writes the credentials/root as PEM into |dir| and returns the paths.
std::string WritePem(const std::string& dir, const std::string& name, const std::string& pem);
std::string ChainPem(const tls::Credentials& creds);
std::string KeyPem(const tls::Credentials& creds);

}  // namespace zm::testing
