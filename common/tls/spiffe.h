// SPIFFE IDs of mesh workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
#pragma once

#include <string>
#include <string_view>

namespace zm::tls {

struct SpiffeId {
  std::string trust_domain;
  std::string ns;
  std::string sa;

  std::string ToString() const;  // "spiffe://td/ns/x/sa/y"
  bool operator==(const SpiffeId&) const = default;
};

// Strict parse: lowercase scheme, trust domain [a-z0-9._-] (<= 255), namespace a DNS label (<= 63),
// service account a DNS subdomain (<= 253), nothing else in the path, no query/fragment/percent-encoding.
// On failure returns false and sets *error to a specific reason.
bool ParseSpiffeId(std::string_view uri, SpiffeId* out, std::string* error);

// The same checks for the parts, used by config loaders.
bool ValidTrustDomain(std::string_view td, std::string* error);
bool ValidNamespace(std::string_view ns, std::string* error);
bool ValidServiceAccount(std::string_view sa, std::string* error);

}  // namespace zm::tls
