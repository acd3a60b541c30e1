// SHA-256 as lowercase hex: join-token hashes, CA signer ids (of a certificate's DER).
#pragma once

#include <string>
#include <string_view>

namespace zm::tls {

std::string Sha256Hex(std::string_view data);

}  // namespace zm::tls
