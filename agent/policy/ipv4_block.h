// IPv4 CIDR blocks of TrafficPermission sources, kept as (network, mask) so a match is one AND and one compare.
#pragma once

#include <netinet/in.h>

#include <string>
#include <string_view>

namespace zm::agent::policy {

struct Ipv4Block {
  in_addr_t net = 0;   // network byte order, host bits cleared
  in_addr_t mask = 0;  // network byte order

  bool Contains(in_addr_t ip) const { return (ip & mask) == net; }
};

// "a.b.c.d/len" (0..32) or a bare "a.b.c.d" (= /32). Host bits are cleared, as the controller accepts them.
bool ParseIpv4Block(std::string_view text, Ipv4Block* out, std::string* error);

}  // namespace zm::agent::policy
