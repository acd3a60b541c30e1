// Validates a workload CSR before anything is signed. Pure: knows nothing about nodes or gRPC.
#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>

#include "common/tls/spiffe.h"

namespace zm::ca {

struct CsrCheck {
  bool ok = false;
  // Rejections caused by who asks (wrong trust domain) rather than by a malformed request.
  bool denied = false;
  std::string error;
  bssl::UniquePtr<EVP_PKEY> public_key;
  tls::SpiffeId id;
};

constexpr size_t kMaxCsrBytes = 16 * 1024;

// Accepts only: a valid self-signature, an ECDSA P-256 key, exactly one URI SAN that is a SPIFFE ID in
// `trust_domain` (tls::ParseSpiffeId: the data plane's rule, so nothing is signed that agents would refuse), no other
// SAN and no CA basic constraint.
CsrCheck CheckCsr(std::string_view csr_pem, std::string_view trust_domain);

}  // namespace zm::ca
