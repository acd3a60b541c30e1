#include "agent/state/ipv4.h"

#include <arpa/inet.h>

namespace zm::agent {

std::string Ipv4ToString(in_addr_t ip) {
  char buf[INET_ADDRSTRLEN] = "";
  in_addr a{};
  a.s_addr = ip;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

}  // namespace zm::agent
