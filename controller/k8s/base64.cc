#include "controller/k8s/base64.h"

#include <openssl/base64.h>

namespace zm::k8s {

std::string Base64Encode(const std::string& in) {
  size_t len = 0;
  if (!EVP_EncodedLength(&len, in.size())) return "";
  std::string out(len, '\0');
  size_t n =
      EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()), reinterpret_cast<const uint8_t*>(in.data()), in.size());
  out.resize(n);
  return out;
}

std::optional<std::string> Base64Decode(const std::string& in) {
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ') clean += c;
  }
  size_t max_len = 0;
  if (!EVP_DecodedLength(&max_len, clean.size())) return std::nullopt;
  std::string out(max_len, '\0');
  size_t len = 0;
  if (!EVP_DecodeBase64(reinterpret_cast<uint8_t*>(out.data()), &len, out.size(),
                        reinterpret_cast<const uint8_t*>(clean.data()), clean.size())) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

}  // namespace zm::k8s
