// IPv4 and IPv6 addresses, CIDR blocks and socket addresses as the agent and the controller keep them: one value
// type for both families, so a dual-stack pod is two entries of the same maps rather than a second code path.
// IPv4-mapped IPv6 text or sockaddrs (::ffff:10.0.0.1) are normalised to IPv4: a dual-stack socket's v4 peer is the
// same workload as the v4 pod IP.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace zm::net {

class IpAddr {
 public:
  IpAddr() = default;  // unset: neither family; ToString() is ""
  static IpAddr V4(in_addr_t addr_be);
  static IpAddr V6(const in6_addr& addr);
  // "10.0.0.1", "fd00::1", "::ffff:10.0.0.1" (-> IPv4). No brackets, no zone, no port.
  static std::optional<IpAddr> Parse(std::string_view text);

  bool empty() const { return family_ == 0; }
  bool is_v4() const { return family_ == AF_INET; }
  bool is_v6() const { return family_ == AF_INET6; }
  int family() const { return family_; }                  // AF_INET, AF_INET6 or 0
  in_addr_t v4() const;                                   // network byte order; 0 unless is_v4()
  in6_addr v6() const;                                    // all zero unless is_v6()
  const uint8_t* bytes() const { return bytes_.data(); }  // network order, size() bytes
  size_t size() const { return is_v4() ? 4 : is_v6() ? 16 : 0; }
  bool IsLoopback() const;
  std::string ToString() const;  // "10.0.0.1", "fd00::1" (RFC 5952 form), "" when unset
  size_t Hash() const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;  // IPv4 before IPv6, then bytes

 private:
  uint8_t family_ = 0;
  std::array<uint8_t, 16> bytes_{};  // IPv4 in the first 4, the rest zero
};

// A network: the address with host bits cleared and a prefix length (0..32 for IPv4, 0..128 for IPv6).
struct Cidr {
  IpAddr net;
  uint8_t prefix_len = 0;

  // "10.0.0.0/8", "fd00::/8"; a bare address is a host route (/32, /128). Host bits set is an error when
  // |strict_host_bits|, else they are cleared. |error| (optional) says what is wrong.
  static std::optional<Cidr> Parse(std::string_view text, std::string* error = nullptr, bool strict_host_bits = false);
  bool Contains(const IpAddr& ip) const;  // false across families
  std::string ToString() const;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// An IP address and a TCP port (host byte order).
struct SockAddr {
  IpAddr ip;
  uint16_t port = 0;

  // From what accept()/getsockname() return; nullopt for other families. IPv4-mapped IPv6 becomes IPv4.
  static std::optional<SockAddr> FromSockaddr(const sockaddr* sa, socklen_t len);
  static SockAddr FromSockaddrIn(const sockaddr_in& sa);
  // "10.0.0.1:80" or "[fd00::1]:80" (an HTTP authority / HBONE CONNECT target). Port 1..65535.
  static std::optional<SockAddr> Parse(std::string_view text);
  // Fills |out| for bind()/connect() in the address's own family; returns its length, 0 when the address is unset.
  socklen_t ToSockaddr(sockaddr_storage* out) const;
  std::string ToString() const;  // "10.0.0.1:80", "[fd00::1]:80"
  size_t Hash() const { return ip.Hash() * 31 + port; }

  friend bool operator==(const SockAddr&, const SockAddr&) = default;
  friend auto operator<=>(const SockAddr&, const SockAddr&) = default;
};

}  // namespace zm::net

template <>
struct std::hash<zm::net::IpAddr> {
  size_t operator()(const zm::net::IpAddr& a) const noexcept { return a.Hash(); }
};
template <>
struct std::hash<zm::net::SockAddr> {
  size_t operator()(const zm::net::SockAddr& a) const noexcept { return a.Hash(); }
};
