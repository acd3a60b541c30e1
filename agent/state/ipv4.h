// IPv4 addresses as the agent keeps them (in_addr_t, network byte order) to text.
#pragma once

#include <netinet/in.h>

#include <string>
#include <string_view>

namespace zm::agent {

std::string Ipv4ToString(in_addr_t ip);     // "10.244.1.11"
bool ValidIpv4Cidr(std::string_view text);  // "10.0.0.0/8" or a bare address (the BPF manager parses them then)

}  // namespace zm::agent
