// The HBONE CONNECT's `:authority`: "IPv4:port", the destination pod's address and port. Untrusted input (a peer's
// request header): anything else is refused (`fuzz/hbone_headers.cc` fuzzes it).
#pragma once

#include <netinet/in.h>

#include <string_view>

namespace zm::proxy {

// "a.b.c.d:port" (port 1-65535, decimal, no sign or spaces) into |out|; false for anything else.
bool ParseAuthority(std::string_view authority, sockaddr_in* out);

}  // namespace zm::proxy
