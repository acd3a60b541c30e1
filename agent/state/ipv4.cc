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

bool ValidIpv4Cidr(std::string_view text) {
  auto slash = text.find('/');
  std::string addr(text.substr(0, slash));
  in_addr a{};
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return false;
  if (slash == std::string_view::npos) return true;
  std::string_view len = text.substr(slash + 1);
  if (len.empty() || len.size() > 2) return false;
  int n = 0;
  for (char c : len) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  return n <= 32;
}

}  // namespace zm::agent
