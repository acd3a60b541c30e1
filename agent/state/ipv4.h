// IPv4 addresses as the agent keeps them (in_addr_t, network byte order) to text.
#pragma once

#include <netinet/in.h>

#include <string>

namespace zm::agent {

std::string Ipv4ToString(in_addr_t ip);  // "10.244.1.11"

}  // namespace zm::agent
