// The compiled L4 authorization of one config: every TrafficPermission resolved to the workloads it protects, indexed
// by destination IP. Immutable once built, so any number of worker threads may Evaluate() at the same time.
//
// Order (Istio AuthorizationPolicy semantics): a matching DENY denies; else a matching ALLOW allows; else, if an ALLOW
// policy selects the destination and port, the connection is denied (an ALLOW policy turns its workloads into
// allow-lists); else the MeshConfig default_policy decides (ALLOW when unspecified).
//
// Permissions with http rules match requests, not connections. On a port every Service selecting the workload
// resolves to HTTP/1.1, or every one to HTTP/2 (h2c, gRPC: each stream is a request), a connection that only such
// permissions could decide is let through with AuthzDecision::per_request, and each of its requests is evaluated
// (AuthzRequest::http) in the same order. On any other port their rules cannot be checked, so they never open more than
// written: an ALLOW with http allows nothing (but still makes the workload an allow-list) and a DENY with http denies
// the whole connection.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/control/config_state.h"
#include "agent/policy/compiled_policy.h"
#include "agent/proxy/options.h"

namespace zm::agent::policy {

// Labels of the decisions no TrafficPermission made.
inline constexpr char kImplicitDenyPolicy[] = "default-deny-by-allow-policies";
inline constexpr char kMeshDefaultPolicy[] = "mesh-default";

class PolicySet {
 public:
  // nullptr and *error when the config is unusable (no MeshConfig, a bad CIDR / SPIFFE ID / port / workload IP):
  // a half-understood policy could open what it was meant to close.
  static std::shared_ptr<const PolicySet> Compile(const control::ConfigState& state, std::string* error);

  // Allocates only the returned strings.
  proxy::AuthzDecision Evaluate(const proxy::AuthzRequest& req) const;

  bool default_allow() const { return default_allow_; }
  size_t policy_count() const { return policies_.size(); }

 private:
  // The policies protecting one workload. Several workloads may share an IP (host-network pods), so an IP maps to a
  // list and the request's workload is picked by namespace/name.
  struct Protected {
    std::string ns;
    std::string name;
    std::vector<const CompiledPolicy*> deny;
    std::vector<const CompiledPolicy*> allow;
    bool has_http = false;             // one of the policies has http rules
    std::vector<uint16_t> http_ports;  // HTTP/1.1, h2c and gRPC target ports; sorted; computed only when has_http

    bool IsHttpPort(uint16_t port) const;
  };

  PolicySet() = default;
  const Protected* Find(const Workload* destination) const;

  std::string trust_domain_;
  bool default_allow_ = true;
  std::vector<CompiledPolicy> policies_;  // never resized after Compile: Protected points into it
  // Keyed by each workload's primary address (Workload::ips[0]): the destination is a workload, not an address.
  std::unordered_map<net::IpAddr, std::vector<Protected>> by_ip_;
};

}  // namespace zm::agent::policy
