#include "common/net/ip_addr.h"

#include <arpa/inet.h>

#include <cstring>

namespace zm::net {
namespace {

constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool ParsePort(std::string_view s, uint16_t* out) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return false;
  *out = static_cast<uint16_t>(port);
  return true;
}

}  // namespace

IpAddr IpAddr::V4(in_addr_t addr_be) {
  IpAddr a;
  a.family_ = AF_INET;
  std::memcpy(a.bytes_.data(), &addr_be, 4);
  return a;
}

IpAddr IpAddr::V6(const in6_addr& addr) {
  IpAddr a;
  if (std::memcmp(addr.s6_addr, kV4Mapped, sizeof(kV4Mapped)) == 0) {
    in_addr_t v4;
    std::memcpy(&v4, addr.s6_addr + 12, 4);
    return V4(v4);
  }
  a.family_ = AF_INET6;
  std::memcpy(a.bytes_.data(), addr.s6_addr, 16);
  return a;
}

std::optional<IpAddr> IpAddr::Parse(std::string_view text) {
  // INET6_ADDRSTRLEN covers the longest form (with an embedded IPv4). inet_pton takes no zone and no brackets.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) return V4(v4.s_addr);
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) == 1) return V6(v6);
  return std::nullopt;
}

in_addr_t IpAddr::v4() const {
  in_addr_t out = 0;
  if (is_v4()) std::memcpy(&out, bytes_.data(), 4);
  return out;
}

in6_addr IpAddr::v6() const {
  in6_addr out{};
  if (is_v6()) std::memcpy(out.s6_addr, bytes_.data(), 16);
  return out;
}

bool IpAddr::IsLoopback() const {
  if (is_v4()) return bytes_[0] == 127;
  if (!is_v6()) return false;
  for (int i = 0; i < 15; ++i)
    if (bytes_[i] != 0) return false;
  return bytes_[15] == 1;
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) return inet_ntop(AF_INET, bytes_.data(), buf, sizeof(buf)) ? buf : "";
  if (is_v6()) return inet_ntop(AF_INET6, bytes_.data(), buf, sizeof(buf)) ? buf : "";
  return "";
}

size_t IpAddr::Hash() const {
  // FNV-1a over the family and the address bytes: cheap, and IPv4 keys spread like the in_addr_t keys did.
  uint64_t h = 1469598103934665603ull ^ family_;
  for (size_t i = 0; i < size(); ++i) {
    h ^= bytes_[i];
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

std::optional<Cidr> Cidr::Parse(std::string_view text, std::string* error, bool strict_host_bits) {
  auto fail = [&](std::string why) -> std::optional<Cidr> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  size_t slash = text.find('/');
  auto ip = IpAddr::Parse(text.substr(0, slash));
  if (!ip) return fail("\"" + std::string(text) + "\" is not an IPv4 or IPv6 address or CIDR");
  const unsigned max_len = ip->is_v4() ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    std::string_view len_s = text.substr(slash + 1);
    if (len_s.empty() || len_s.size() > 3) return fail("\"" + std::string(text) + "\" has no valid prefix length");
    len = 0;
    for (char c : len_s) {
      if (c < '0' || c > '9') return fail("\"" + std::string(text) + "\" has no valid prefix length");
      len = len * 10 + static_cast<unsigned>(c - '0');
    }
    if (len > max_len) {
      return fail("\"" + std::string(text) + "\": prefix length " + std::to_string(len) + " exceeds " +
                  std::to_string(max_len));
    }
  }
  Cidr c;
  c.prefix_len = static_cast<uint8_t>(len);
  // Clear the host bits, byte by byte.
  in6_addr raw{};
  std::memcpy(raw.s6_addr, ip->bytes(), ip->size());
  bool had_host_bits = false;
  for (size_t i = 0; i < ip->size(); ++i) {
    unsigned bits_here = len >= (i + 1) * 8 ? 8 : (len > i * 8 ? len - i * 8 : 0);
    uint8_t mask = bits_here == 8 ? 0xff : static_cast<uint8_t>(0xff00u >> bits_here);
    if (raw.s6_addr[i] & ~mask) had_host_bits = true;
    raw.s6_addr[i] &= mask;
  }
  if (had_host_bits && strict_host_bits) {
    return fail("\"" + std::string(text) + "\" has host bits set (the network is not " + ip->ToString() + ")");
  }
  if (ip->is_v4()) {
    in_addr_t v4;
    std::memcpy(&v4, raw.s6_addr, 4);
    c.net = IpAddr::V4(v4);
  } else {
    c.net = IpAddr::V6(raw);
  }
  return c;
}

bool Cidr::Contains(const IpAddr& ip) const {
  if (ip.family() != net.family() || net.empty()) return false;
  const uint8_t* a = ip.bytes();
  const uint8_t* n = net.bytes();
  unsigned full = prefix_len / 8;
  if (std::memcmp(a, n, full) != 0) return false;
  unsigned rest = prefix_len % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (a[full] & mask) == n[full];
}

std::string Cidr::ToString() const {
  return net.ToString() + "/" + std::to_string(prefix_len);
}

std::optional<SockAddr> SockAddr::FromSockaddr(const sockaddr* sa, socklen_t len) {
  if (!sa) return std::nullopt;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    return FromSockaddrIn(*reinterpret_cast<const sockaddr_in*>(sa));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return SockAddr{IpAddr::V6(in6->sin6_addr), ntohs(in6->sin6_port)};
  }
  return std::nullopt;
}

SockAddr SockAddr::FromSockaddrIn(const sockaddr_in& sa) {
  return SockAddr{IpAddr::V4(sa.sin_addr.s_addr), ntohs(sa.sin_port)};
}

std::optional<SockAddr> SockAddr::Parse(std::string_view text) {
  SockAddr out;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    auto ip = IpAddr::Parse(text.substr(1, close - 1));
    // Only IPv6 goes in brackets; "[10.0.0.1]:80" is not an authority.
    if (!ip || !ip->is_v6() || !ParsePort(text.substr(close + 2), &out.port)) return std::nullopt;
    out.ip = *ip;
    return out;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto ip = IpAddr::Parse(text.substr(0, colon));
  // An unbracketed IPv6 address with a port is ambiguous ("fd00::1:80"): refused.
  if (!ip || !ip->is_v4() || !ParsePort(text.substr(colon + 1), &out.port)) return std::nullopt;
  out.ip = *ip;
  return out;
}

socklen_t SockAddr::ToSockaddr(sockaddr_storage* out) const {
  std::memset(out, 0, sizeof(*out));
  if (ip.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = ip.v4();
    return sizeof(sockaddr_in);
  }
  if (ip.is_v6()) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = ip.v6();
    return sizeof(sockaddr_in6);
  }
  return 0;
}

std::string SockAddr::ToString() const {
  if (ip.is_v6()) return "[" + ip.ToString() + "]:" + std::to_string(port);
  return ip.ToString() + ":" + std::to_string(port);
}

}  // namespace zm::net
