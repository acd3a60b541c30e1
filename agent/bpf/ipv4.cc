#include "agent/bpf/ipv4.h"

#include <arpa/inet.h>

#include <charconv>

namespace zm::agent::bpf {

std::optional<uint32_t> ParseIpv4(std::string_view text) {
  if (text.size() >= INET_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return a.s_addr;
}

std::optional<Ipv4Cidr> ParseCidr(std::string_view text) {
  Ipv4Cidr c;
  auto slash = text.find('/');
  auto ip = ParseIpv4(text.substr(0, slash));
  if (!ip) return std::nullopt;
  if (slash != std::string_view::npos) {
    std::string_view len = text.substr(slash + 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), v);
    if (ec != std::errc() || p != len.data() + len.size() || len.empty() || v > 32) return std::nullopt;
    c.prefix_len = static_cast<uint8_t>(v);
  }
  uint32_t mask = c.prefix_len == 0 ? 0 : htonl(~uint32_t{0} << (32 - c.prefix_len));
  c.addr_be = *ip & mask;
  return c;
}

std::string FormatIpv4(uint32_t addr_be) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{};
  a.s_addr = addr_be;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

std::string FormatCidr(const Ipv4Cidr& cidr) {
  return FormatIpv4(cidr.addr_be) + "/" + std::to_string(cidr.prefix_len);
}

}  // namespace zm::agent::bpf
