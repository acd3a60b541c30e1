#include "agent/proxy/policy_path.h"

#include "common/percent_encode.h"

namespace zm::proxy {
namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 5.2.4 on an absolute path.
std::string RemoveDotSegments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  while (!in.empty()) {
    if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
    } else {
      size_t next = in.find('/', 1);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out.empty() ? "/" : out;
}

}  // namespace

bool NormalizePolicyPath(std::string_view target, std::string* path, std::string* error) {
  path->clear();
  if (target == "*") {
    *path = "*";
    return true;
  }
  if (!target.starts_with("/")) {
    size_t scheme = target.find("://");
    if (scheme == std::string_view::npos) return true;  // authority-form (CONNECT): no path
    target.remove_prefix(scheme + 3);
    size_t slash = target.find_first_of("/?");
    target = slash == std::string_view::npos || target[slash] == '?' ? std::string_view("/") : target.substr(slash);
  }
  target = target.substr(0, target.find_first_of("?#"));
  std::string decoded;
  decoded.reserve(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    char c = target[i];
    if (c != '%') {
      decoded.push_back(c);
      continue;
    }
    int hi = i + 2 < target.size() ? Hex(target[i + 1]) : -1;
    int lo = i + 2 < target.size() ? Hex(target[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      *error = "bad percent-encoding in the path";
      return false;
    }
    auto byte = static_cast<unsigned char>(hi * 16 + lo);
    if (byte == '/' || byte == '\\' || byte == 0) {
      *error = "the path has an encoded '/', '\\' or NUL, which authorization cannot see through";
      return false;
    }
    if (UrlUnreserved(byte)) {  // ASCII only, whatever the locale: a policy must not match differently per host
      decoded.push_back(static_cast<char>(byte));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      decoded.push_back('%');
      decoded.push_back(kHex[byte >> 4]);
      decoded.push_back(kHex[byte & 15]);
    }
    i += 2;
  }
  *path = RemoveDotSegments(decoded);
  return true;
}

}  // namespace zm::proxy
