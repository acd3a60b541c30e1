// "Who can reach X?" and "can A reach B, and why?", answered by the policy engine the agents run (agent/policy's
// PolicySet, compiled from the same resources the agents hold) after the checks the data plane makes before it:
// a destination outside the mesh is reached directly (no policy), a client outside the mesh arrives in plaintext,
// which a STRICT destination refuses.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/policy/policy_set.h"
#include "agent/state/mesh_snapshot.h"
#include "common/net/ip_addr.h"
#include "zeromesh/v1/status.pb.h"

namespace zm::ctrl::console {

class PolicyQueries {
 public:
  // nullptr with *error when the resources do not compile (no MeshConfig yet, ...).
  static std::unique_ptr<PolicyQueries> Build(const zeromesh::v1::ResourceSet& rs, std::string* error);

  // from: "ns/name" or an IPv4 or IPv6 address (a client outside the mesh); to: "ns/name"; port 0: a port no rule
  // names. Null with *error (a 400/404 reason) when from/to are not known.
  nlohmann::json Reach(const std::string& from, const std::string& to, uint16_t port, std::string* error) const;
  nlohmann::json Who(const std::string& to, uint16_t port, std::string* error) const;
  // Per enrolled workload: who may reach it on its first Service port (capped at kMaxEffective workloads).
  nlohmann::json Effective() const;

  static constexpr size_t kMaxEffective = 300;

 private:
  PolicyQueries() = default;
  const agent::Workload* Find(const std::string& key) const;  // "ns/name"
  nlohmann::json Decide(const agent::Workload* source, const net::IpAddr& source_ip, const agent::Workload& to,
                        uint16_t port) const;
  uint16_t FirstPort(const agent::Workload& w) const;

  std::shared_ptr<const agent::MeshSnapshot> snap_;
  std::shared_ptr<const agent::policy::PolicySet> policy_;
  std::map<std::string, const agent::Workload*> by_key_;
  std::map<std::string, uint16_t> first_port_;  // "ns/name" -> a target port of a Service selecting it
};

}  // namespace zm::ctrl::console
