// Key + CSR generation on the node: ECDSA P-256, one URI SAN (the workload's SPIFFE ID). The key never leaves.
#pragma once

#include <openssl/evp.h>

#include <string>

namespace zm::agent::control {

struct KeyAndCsr {
  bssl::UniquePtr<EVP_PKEY> key;
  std::string key_pem;  // PKCS#8
  std::string csr_pem;
};

bool GenerateKeyAndCsr(const std::string& spiffe_id, KeyAndCsr* out, std::string* error);

}  // namespace zm::agent::control
