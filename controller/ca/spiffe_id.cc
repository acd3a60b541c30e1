#include "controller/ca/spiffe_id.h"

#include <vector>

namespace zm::ca {

bool ValidTrustDomain(std::string_view td) {
  if (td.empty() || td.size() > 255) return false;
  for (char c : td) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) return false;
  }
  return true;
}

bool ValidK8sName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : name) {
    if (!alnum(c) && c != '-' && c != '.') return false;
  }
  return alnum(name.front()) && alnum(name.back());
}

std::optional<SpiffeId> ParseSpiffeId(std::string_view uri, std::string* why) {
  auto fail = [&](const char* reason) -> std::optional<SpiffeId> {
    if (why) *why = reason;
    return std::nullopt;
  };
  constexpr std::string_view kScheme = "spiffe://";
  if (uri.substr(0, kScheme.size()) != kScheme) return fail("not a spiffe:// URI");
  std::string_view rest = uri.substr(kScheme.size());
  std::vector<std::string_view> parts;
  while (true) {
    size_t slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  if (parts.size() != 5 || parts[1] != "ns" || parts[3] != "sa") {
    return fail("expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>");
  }
  if (!ValidTrustDomain(parts[0])) return fail("invalid trust domain");
  if (!ValidK8sName(parts[2])) return fail("invalid namespace");
  if (!ValidK8sName(parts[4])) return fail("invalid service account");
  return SpiffeId{std::string(parts[0]), std::string(parts[2]), std::string(parts[4])};
}

}  // namespace zm::ca
