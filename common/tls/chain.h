// Certificate chain verification against a set of roots (BoringSSL), shared by the CA (is the signer trusted?), the
// agent's cert store (does a new certificate verify?) and the agent's check of its controller.
#pragma once

#include <string>

#include "common/tls/pem.h"

namespace zm::tls {

// True if chain[0] (the leaf) verifies, now, against `roots` with chain[1..] as untrusted intermediates; otherwise
// false with *why (the verifier's reason). An empty chain fails.
bool VerifyChain(const CertList& chain, const CertList& roots, std::string* why);

}  // namespace zm::tls
