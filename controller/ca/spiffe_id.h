// SPIFFE IDs of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace zm::ca {

struct SpiffeId {
  std::string trust_domain;
  std::string ns;
  std::string sa;
  std::string str() const { return "spiffe://" + trust_domain + "/ns/" + ns + "/sa/" + sa; }
};

// nullopt (with *why filled) when `uri` is not exactly that form with DNS-label-like segments.
std::optional<SpiffeId> ParseSpiffeId(std::string_view uri, std::string* why = nullptr);
// Trust domain: lowercase letters, digits, '.', '-', '_'; 1..255 characters.
bool ValidTrustDomain(std::string_view td);
// Kubernetes-style name: lowercase alphanumerics, '-' and '.', starting and ending alphanumeric, <= 253 chars.
bool ValidK8sName(std::string_view name);

}  // namespace zm::ca
