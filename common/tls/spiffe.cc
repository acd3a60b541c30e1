#include "common/tls/spiffe.h"

namespace zm::tls {
namespace {

constexpr std::string_view kScheme = "spiffe://";
constexpr std::string_view kLabelRule =
    "a Kubernetes namespace is a DNS-1123 label (1-63 lowercase letters, digits and '-', starting and ending with a "
    "letter or digit)";
constexpr std::string_view kSubdomainRule =
    "a DNS-1123 subdomain (1-253 lowercase letters, digits, '-' and '.', each dot-separated part starting and ending "
    "with a letter or digit)";

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// The value as shown in errors: bounded (it may come from a CSR) and printable.
std::string Quote(std::string_view v) {
  std::string s = "'";
  for (char c : v.substr(0, 80)) s += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s + (v.size() > 80 ? "...'" : "'");
}

std::string CharProblem(char c) {
  if (c == '.') return "'.' is not allowed";
  if (c >= 'A' && c <= 'Z') return "uppercase letters are not allowed";
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "' is not allowed";
  return "a non-printable or non-ASCII byte is not allowed";
}

// "" when `s` is lowercase alnum at both ends and otherwise alnum or one of `extra`; else what is wrong.
std::string LabelProblem(std::string_view s, std::string_view extra) {
  if (s.empty()) return "an empty part is not allowed";
  for (char c : s) {
    if (!IsLowerAlnum(c) && extra.find(c) == std::string_view::npos) return CharProblem(c);
  }
  if (!IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return "must start and end with a letter or digit";
  return "";
}

}  // namespace

std::string SpiffeId::ToString() const {
  std::string s;
  s.reserve(kScheme.size() + trust_domain.size() + ns.size() + sa.size() + 8);
  s.append(kScheme).append(trust_domain).append("/ns/").append(ns).append("/sa/").append(sa);
  return s;
}

bool ValidTrustDomain(std::string_view td, std::string* error) {
  std::string problem;
  if (td.empty()) {
    problem = "it is empty";
  } else if (td.size() > 255) {
    problem = "longer than 255 characters";
  } else {
    for (char c : td) {
      if (!IsLowerAlnum(c) && c != '.' && c != '-' && c != '_') {
        problem = CharProblem(c);
        break;
      }
    }
  }
  if (problem.empty()) return true;
  *error = "invalid trust domain " + Quote(td) + ": " + problem +
           "; a SPIFFE trust domain is 1-255 lowercase letters, digits, '.', '-' and '_'";
  return false;
}

bool ValidNamespace(std::string_view ns, std::string* error) {
  std::string problem = ns.size() > 63 ? "longer than 63 characters" : LabelProblem(ns, "-");
  if (ns.empty()) problem = "it is empty";
  if (problem.empty()) return true;
  *error = "invalid namespace " + Quote(ns) + ": " + problem + "; " + std::string(kLabelRule);
  return false;
}

bool ValidDnsSubdomain(std::string_view name, std::string_view what, std::string* error) {
  std::string problem;
  if (name.empty()) {
    problem = "it is empty";
  } else if (name.size() > 253) {
    problem = "longer than 253 characters";
  } else {
    std::string_view rest = name;
    while (problem.empty()) {
      size_t dot = rest.find('.');
      problem = LabelProblem(rest.substr(0, dot), "-");
      if (dot == std::string_view::npos) break;
      rest.remove_prefix(dot + 1);
    }
  }
  if (problem.empty()) return true;
  *error = "invalid " + std::string(what) + " " + Quote(name) + ": " + problem + "; it must be " +
           std::string(kSubdomainRule);
  return false;
}

bool ValidServiceAccount(std::string_view sa, std::string* error) {
  return ValidDnsSubdomain(sa, "service account", error);
}

bool ParseSpiffeId(std::string_view uri, SpiffeId* out, std::string* error) {
  if (uri.substr(0, kScheme.size()) != kScheme) {
    *error = "SPIFFE ID must start with \"spiffe://\"";
    return false;
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    *error = "SPIFFE ID has no path (expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)";
    return false;
  }
  std::string_view td = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  if (!ValidTrustDomain(td, error)) return false;
  // Path is exactly /ns/<ns>/sa/<sa>; the part validators reject '/', '?', '#', '%' and uppercase.
  constexpr std::string_view kNs = "/ns/";
  constexpr std::string_view kSa = "/sa/";
  constexpr std::string_view kShape = "SPIFFE ID path must be /ns/<namespace>/sa/<service-account>";
  if (path.substr(0, kNs.size()) != kNs) {
    *error = kShape;
    return false;
  }
  path.remove_prefix(kNs.size());
  size_t sa_pos = path.find(kSa);
  if (sa_pos == std::string_view::npos) {
    *error = kShape;
    return false;
  }
  std::string_view ns = path.substr(0, sa_pos);
  std::string_view sa = path.substr(sa_pos + kSa.size());
  if (!ValidNamespace(ns, error) || !ValidServiceAccount(sa, error)) return false;
  out->trust_domain.assign(td);
  out->ns.assign(ns);
  out->sa.assign(sa);
  return true;
}

}  // namespace zm::tls
