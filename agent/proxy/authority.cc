#include "agent/proxy/authority.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

#include "agent/proxy/socket_util.h"

namespace zm::proxy {
namespace {

bool ParseIpv4(std::string_view s, in_addr_t* out) {
  if (s.empty() || s.size() > 15) return false;
  char buf[16];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  in_addr a{};
  if (inet_pton(AF_INET, buf, &a) != 1) return false;
  *out = a.s_addr;
  return true;
}

}  // namespace

bool ParseAuthority(std::string_view authority, sockaddr_in* out) {
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view port_s = authority.substr(colon + 1);
  if (port_s.empty() || port_s.size() > 5) return false;
  uint32_t port = 0;
  for (char c : port_s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  in_addr_t ip;
  if (port == 0 || port > 65535 || !ParseIpv4(authority.substr(0, colon), &ip)) return false;
  *out = MakeAddr(ip, static_cast<uint16_t>(port));
  return true;
}

}  // namespace zm::proxy
