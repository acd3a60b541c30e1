#include "agent/proxy/authority.h"

namespace zm::proxy {

bool ParseAuthority(std::string_view authority, net::SockAddr* out) {
  std::optional<net::SockAddr> a = net::SockAddr::Parse(authority);
  if (!a) return false;
  *out = *a;
  return true;
}

}  // namespace zm::proxy
