#include "agent/policy/ipv4_block.h"

#include <arpa/inet.h>

#include <charconv>

namespace zm::agent::policy {

bool ParseIpv4Block(std::string_view text, Ipv4Block* out, std::string* error) {
  size_t slash = text.find('/');
  std::string addr(text.substr(0, slash));
  in_addr a{};
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) {
    *error = "'" + std::string(text) + "' is not an IPv4 CIDR: bad address";
    return false;
  }
  unsigned len = 32;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || len > 32) {
      *error = "'" + std::string(text) + "' is not an IPv4 CIDR: prefix length must be 0..32";
      return false;
    }
  }
  // Shifting a 32-bit value by 32 is undefined: /0 gets an explicit empty mask.
  uint32_t host_mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  out->mask = htonl(host_mask);
  out->net = a.s_addr & out->mask;
  return true;
}

}  // namespace zm::agent::policy
