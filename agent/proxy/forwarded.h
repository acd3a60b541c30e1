// The HTTP `Forwarded` header (RFC 7239) as HBONE carries it: `for="10.244.1.11:41234"` from ztunnel, `for=10.0.0.1`
// from older clients, several comma-separated elements from a chain of proxies. Parsing is strict about structure
// (so that no form can slip past the source checks by being "ignored") and lenient in one documented way: an unquoted
// value may contain ':', '[' and ']' (RFC 7239 requires quotes there; some senders omit them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/net/ip_addr.h"

namespace zm::proxy {

// One `for=` node (RFC 7239 section 6).
struct ForwardedNode {
  enum class Kind {
    kAbsent,      // the element has no for= parameter
    kIpv4,        // for=192.0.2.1 or for="192.0.2.1:4711"
    kIpv6,        // for="[2001:db8::1]" or for="[2001:db8::1]:4711"
    kUnknown,     // for=unknown
    kObfuscated,  // for=_hidden (obfnode)
  };
  Kind kind = Kind::kAbsent;
  net::IpAddr ip;  // kIpv4 and kIpv6
  bool has_port = false;
  uint16_t port = 0;  // host order; a numeric port only (an obfuscated port leaves has_port false)
};

// Parses a whole `Forwarded` value (several header lines joined with ","). |fors| gets one entry per element, in
// order: the first is the original client, the last the proxy closest to us. False with |error| set for anything
// malformed: empty value, a parameter without '=', a bad token or quoted string, a duplicate parameter in one element,
// an invalid for= node or port, more than kMaxForwardedElements elements.
constexpr size_t kMaxForwardedElements = 32;
bool ParseForwarded(std::string_view value, std::vector<ForwardedNode>* fors, std::string* error);

// Parses one node value (already unquoted), e.g. `10.0.0.1`, `10.0.0.1:80`, `[::1]:80`, `unknown`, `_x:_y`.
bool ParseForwardedNode(std::string_view node, ForwardedNode* out, std::string* error);

// `for="a.b.c.d:port"` or `for="[v6]:port"` (port 0: `for="a.b.c.d"`, `for="[v6]"`), what our client sends, like
// ztunnel.
std::string FormatForwardedFor(const net::IpAddr& ip, uint16_t port);

}  // namespace zm::proxy
