#include "common/tls/spiffe.h"

namespace zm::tls {
namespace {

constexpr std::string_view kScheme = "spiffe://";

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string SpiffeId::ToString() const {
  std::string s;
  s.reserve(kScheme.size() + trust_domain.size() + ns.size() + sa.size() + 8);
  s.append(kScheme).append(trust_domain).append("/ns/").append(ns).append("/sa/").append(sa);
  return s;
}

bool ValidTrustDomain(std::string_view td, std::string* error) {
  if (td.empty()) {
    *error = "trust domain is empty";
    return false;
  }
  if (td.size() > 255) {
    *error = "trust domain longer than 255 characters";
    return false;
  }
  for (char c : td) {
    if (!IsLowerAlnum(c) && c != '.' && c != '-' && c != '_') {
      *error = "trust domain has an invalid character (allowed: a-z 0-9 . - _)";
      return false;
    }
  }
  return true;
}

bool ValidNamespace(std::string_view ns, std::string* error) {
  if (ns.empty() || ns.size() > 63) {
    *error = "namespace must be 1-63 characters";
    return false;
  }
  for (char c : ns) {
    if (!IsLowerAlnum(c) && c != '-') {
      *error = "namespace has an invalid character (allowed: a-z 0-9 -)";
      return false;
    }
  }
  if (!IsLowerAlnum(ns.front()) || !IsLowerAlnum(ns.back())) {
    *error = "namespace must start and end with a letter or digit";
    return false;
  }
  return true;
}

bool ValidServiceAccount(std::string_view sa, std::string* error) {
  if (sa.empty() || sa.size() > 253) {
    *error = "service account must be 1-253 characters";
    return false;
  }
  for (char c : sa) {
    if (!IsLowerAlnum(c) && c != '-' && c != '.') {
      *error = "service account has an invalid character (allowed: a-z 0-9 - .)";
      return false;
    }
  }
  if (!IsLowerAlnum(sa.front()) || !IsLowerAlnum(sa.back())) {
    *error = "service account must start and end with a letter or digit";
    return false;
  }
  return true;
}

bool ParseSpiffeId(std::string_view uri, SpiffeId* out, std::string* error) {
  if (uri.substr(0, kScheme.size()) != kScheme) {
    *error = "SPIFFE ID must start with \"spiffe://\"";
    return false;
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    *error = "SPIFFE ID has no path";
    return false;
  }
  std::string_view td = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  std::string why;
  if (!ValidTrustDomain(td, &why)) {
    *error = "SPIFFE ID: " + why;
    return false;
  }
  // Path is exactly /ns/<ns>/sa/<sa>; the part validators reject '/', '?', '#', '%' and uppercase.
  constexpr std::string_view kNs = "/ns/";
  constexpr std::string_view kSa = "/sa/";
  if (path.substr(0, kNs.size()) != kNs) {
    *error = "SPIFFE ID path must be /ns/<namespace>/sa/<service-account>";
    return false;
  }
  path.remove_prefix(kNs.size());
  size_t sa_pos = path.find(kSa);
  if (sa_pos == std::string_view::npos) {
    *error = "SPIFFE ID path must be /ns/<namespace>/sa/<service-account>";
    return false;
  }
  std::string_view ns = path.substr(0, sa_pos);
  std::string_view sa = path.substr(sa_pos + kSa.size());
  if (!ValidNamespace(ns, &why) || !ValidServiceAccount(sa, &why)) {
    *error = "SPIFFE ID: " + why;
    return false;
  }
  out->trust_domain.assign(td);
  out->ns.assign(ns);
  out->sa.assign(sa);
  return true;
}

}  // namespace zm::tls
