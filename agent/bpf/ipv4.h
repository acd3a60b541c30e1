// IPv4 address / CIDR values as the BPF maps store them (network byte order), with text conversion.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zm::agent::bpf {

struct Ipv4Cidr {
  uint32_t addr_be = 0;  // network byte order; host bits are cleared by ParseCidr
  uint8_t prefix_len = 32;
};

std::optional<uint32_t> ParseIpv4(std::string_view text);  // "10.0.0.1" -> network order
std::optional<Ipv4Cidr> ParseCidr(std::string_view text);  // "10.0.0.0/8"; a bare address means /32
std::string FormatIpv4(uint32_t addr_be);
std::string FormatCidr(const Ipv4Cidr& cidr);

}  // namespace zm::agent::bpf
