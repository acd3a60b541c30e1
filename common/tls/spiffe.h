// SPIFFE IDs of mesh workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
// The one rule for every component: the CA signs only what the data plane will accept, and the controller's manifest
// decoder accepts only namespaces and service accounts that can become such an ID.
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

// Strict parse: lowercase scheme; trust domain per the SPIFFE spec (a-z 0-9 . - _, <= 255); namespace a DNS-1123
// label (a Kubernetes namespace: a-z 0-9 -, <= 63, no '.'); service account a DNS-1123 subdomain (<= 253); nothing
// else in the path, no port, user info, query, fragment or percent-encoding.
// On failure returns false and sets *error to a specific reason naming the offending part.
bool ParseSpiffeId(std::string_view uri, SpiffeId* out, std::string* error);

// The same checks for the parts, used by config loaders and the manifest decoder.
bool ValidTrustDomain(std::string_view td, std::string* error);
bool ValidNamespace(std::string_view ns, std::string* error);
bool ValidServiceAccount(std::string_view sa, std::string* error);
// A DNS-1123 subdomain (the rule for most Kubernetes object names); `what` names the field in the error.
bool ValidDnsSubdomain(std::string_view name, std::string_view what, std::string* error);

}  // namespace zm::tls
