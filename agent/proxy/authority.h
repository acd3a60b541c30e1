// The HBONE CONNECT's `:authority`: "IPv4:port" or "[IPv6]:port", the destination pod's address and port. Untrusted
// input (a peer's request header): anything else is refused (`fuzz/hbone_headers.cc` fuzzes it).
#pragma once

#include <string_view>

#include "common/net/ip_addr.h"

namespace zm::proxy {

// "a.b.c.d:port" or "[v6]:port" (port 1-65535, decimal, no sign or spaces; no zone, no IPv4 in brackets, no
// IPv4-mapped IPv6) into |out|; false for anything else.
bool ParseAuthority(std::string_view authority, net::SockAddr* out);

}  // namespace zm::proxy
