#include "agent/proxy/forwarded.h"

#include <cstring>

namespace zm::proxy {
namespace {

bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// Unquoted values: tchar plus the characters of an unquoted "IP:port" / "[v6]" (see the header).
bool IsValueChar(char c) {
  return IsTchar(c) || c == ':' || c == '[' || c == ']';
}

bool IsObfChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Printable form of a fragment for error messages (bounded, control bytes escaped).
std::string Show(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 64) out += "...";
  return out + "\"";
}

bool IsObfuscated(std::string_view s) {
  if (s.size() < 2 || s[0] != '_') return false;
  for (char c : s.substr(1)) {
    if (!IsObfChar(c)) return false;
  }
  return true;
}

bool ParsePort(std::string_view s, ForwardedNode* out, std::string* error) {
  if (IsObfuscated(s)) return true;  // obfport: no number to keep
  if (s.empty() || s.size() > 5) {
    *error = "bad port " + Show(s) + " (want 1-5 digits or an obfuscated _port)";
    return false;
  }
  uint32_t port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      *error = "bad port " + Show(s) + " (want 1-5 digits or an obfuscated _port)";
      return false;
    }
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) {
    *error = "port " + std::string(s) + " out of range";
    return false;
  }
  out->has_port = true;
  out->port = static_cast<uint16_t>(port);
  return true;
}

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return s_[i_]; }
  void skip() { ++i_; }
  size_t pos() const { return i_; }
  void SkipOws() {
    while (!done() && (peek() == ' ' || peek() == '\t')) ++i_;
  }
  std::string_view Token(bool value) {
    size_t start = i_;
    while (!done() && (value ? IsValueChar(peek()) : IsTchar(peek()))) ++i_;
    return s_.substr(start, i_ - start);
  }
  // At the opening quote. RFC 7230 quoted-string with quoted-pair unescaping.
  bool Quoted(std::string* out, std::string* error) {
    size_t start = i_;
    ++i_;
    while (!done()) {
      unsigned char c = static_cast<unsigned char>(peek());
      ++i_;
      if (c == '"') return true;
      if (c == '\\') {
        if (done()) break;
        unsigned char e = static_cast<unsigned char>(peek());
        ++i_;
        if (e != '\t' && (e < 0x20 || e == 0x7f)) {
          *error = "control character escaped in quoted string at offset " + std::to_string(i_ - 1);
          return false;
        }
        out->push_back(static_cast<char>(e));
        continue;
      }
      if (c != '\t' && (c < 0x20 || c == 0x7f)) {
        *error = "control character in quoted string at offset " + std::to_string(i_ - 1);
        return false;
      }
      out->push_back(static_cast<char>(c));
    }
    *error = "unterminated quoted string starting at offset " + std::to_string(start);
    return false;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

bool ParseForwardedNode(std::string_view node, ForwardedNode* out, std::string* error) {
  *out = ForwardedNode{};
  std::string_view name = node, port;
  bool with_port = false;
  if (!node.empty() && node[0] == '[') {
    size_t close = node.find(']');
    if (close == std::string_view::npos) {
      *error = "unterminated IPv6 address in " + Show(node);
      return false;
    }
    name = node.substr(0, close + 1);
    std::string_view rest = node.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        *error = "unexpected " + Show(rest) + " after the IPv6 address";
        return false;
      }
      with_port = true;
      port = rest.substr(1);
    }
  } else if (size_t colon = node.find(':'); colon != std::string_view::npos) {
    name = node.substr(0, colon);
    port = node.substr(colon + 1);
    with_port = true;
  }
  if (with_port && !ParsePort(port, out, error)) return false;
  if (name.empty()) {
    *error = "empty node name";
    return false;
  }
  if (EqualsNoCase(name, "unknown")) {
    out->kind = ForwardedNode::Kind::kUnknown;
    return true;
  }
  if (IsObfuscated(name)) {
    out->kind = ForwardedNode::Kind::kObfuscated;
    return true;
  }
  if (name[0] == '[') {
    // Only IPv6 goes in brackets. An IPv4-mapped one is refused too: an IPv4 client is written as IPv4, and a
    // "[::ffff:a00:1]" would name an address the text does not spell out.
    std::optional<net::IpAddr> ip = net::IpAddr::Parse(name.substr(1, name.size() - 2));
    if (!ip || !ip->is_v6()) {
      *error = "bad IPv6 address " + Show(name);
      return false;
    }
    out->kind = ForwardedNode::Kind::kIpv6;
    out->ip = *ip;
    return true;
  }
  if (std::optional<net::IpAddr> ip = net::IpAddr::Parse(name); ip && ip->is_v4()) {
    out->kind = ForwardedNode::Kind::kIpv4;
    out->ip = *ip;
    return true;
  }
  *error = "node " + Show(name) + " is not an IPv4 address, a [IPv6] address, 'unknown' or an obfuscated _name";
  return false;
}

bool ParseForwarded(std::string_view value, std::vector<ForwardedNode>* fors, std::string* error) {
  fors->clear();
  Reader r(value);
  while (true) {
    r.SkipOws();
    if (r.done()) break;
    if (r.peek() == ',') {  // empty list element: ignored (RFC 7230 section 7)
      r.skip();
      continue;
    }
    if (fors->size() == kMaxForwardedElements) {
      *error = "more than " + std::to_string(kMaxForwardedElements) + " elements";
      return false;
    }
    ForwardedNode node;
    std::vector<std::string> seen;
    // One element: pairs separated by ';' (empty pairs allowed by the grammar).
    while (true) {
      r.SkipOws();
      if (r.done() || r.peek() == ',') break;
      if (r.peek() == ';') {
        r.skip();
        continue;
      }
      size_t at = r.pos();
      std::string_view name = r.Token(/*value=*/false);
      if (name.empty()) {
        *error = "expected a parameter name at offset " + std::to_string(at) + ", got " + Show(value.substr(at));
        return false;
      }
      if (r.done() || r.peek() != '=') {
        *error = "parameter " + Show(name) + " has no '=' (offset " + std::to_string(r.pos()) + ")";
        return false;
      }
      r.skip();
      std::string lower(name);
      for (char& c : lower) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      for (const auto& s : seen) {
        if (s == lower) {
          *error = "parameter " + Show(name) + " repeated within one element";
          return false;
        }
      }
      seen.push_back(lower);
      std::string v;
      if (!r.done() && r.peek() == '"') {
        if (!r.Quoted(&v, error)) return false;
      } else {
        v.assign(r.Token(/*value=*/true));
        if (v.empty()) {
          *error = "parameter " + Show(name) + " has an empty value (offset " + std::to_string(r.pos()) + ")";
          return false;
        }
      }
      if (lower == "for") {
        std::string why;
        if (!ParseForwardedNode(v, &node, &why)) {
          *error = "for=: " + why;
          return false;
        }
      }
      r.SkipOws();
      if (!r.done() && r.peek() != ';' && r.peek() != ',') {
        *error = "unexpected " + Show(value.substr(r.pos())) + " after parameter " + Show(name);
        return false;
      }
    }
    fors->push_back(node);
  }
  if (fors->empty()) {
    *error = "no forwarded element";
    return false;
  }
  return true;
}

std::string FormatForwardedFor(const net::IpAddr& ip, uint16_t port) {
  // RFC 7239 section 6: an IPv6 node is bracketed, with or without a port.
  std::string node = ip.is_v6() ? "[" + ip.ToString() + "]" : ip.ToString();
  if (port != 0) node += ":" + std::to_string(port);
  return "for=\"" + node + "\"";
}

}  // namespace zm::proxy
