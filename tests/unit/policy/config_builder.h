// Builds agent ConfigStates in code for the policy tests: a MeshConfig, Workloads and TrafficPermissions.
#pragma once

#include <netinet/in.h>

#include <initializer_list>
#include <map>
#include <string>

#include "agent/control/config_state.h"
#include "agent/state/mesh_snapshot.h"
#include "common/tls/spiffe.h"

namespace zm::agent::policy::testing {

namespace v1 = zeromesh::v1;
using Labels = std::map<std::string, std::string>;

inline constexpr char kTrustDomain[] = "cluster.local";

v1::Resource Mesh(v1::Action default_policy = v1::ACTION_UNSPECIFIED);
v1::Resource MeshWorkload(const std::string& ns, const std::string& name, const std::string& sa, const std::string& ip,
                          const Labels& labels);

// A TrafficPermission, filled in fluently: Perm("shop", "p", v1::ALLOW).Identity(...).To({{"app", "x"}}).
class Perm {
 public:
  Perm(const std::string& ns, const std::string& name, v1::Action action);
  Perm& Identity(const std::string& spiffe_id);
  Perm& Namespace(const std::string& ns);
  Perm& IpBlock(const std::string& cidr);
  Perm& FromSelector(const Labels& labels, const std::string& ns = "");
  Perm& To(const Labels& labels);
  Perm& Port(uint32_t port);
  // One spec.http entry; headers as {name, value} exact matches, or {"name^", prefix} for a prefix match.
  Perm& Http(std::initializer_list<std::string> methods, std::initializer_list<std::string> paths,
             std::initializer_list<std::pair<std::string, std::string>> headers = {});
  operator v1::Resource() const { return r_; }

 private:
  v1::TrafficPermission* tp() { return r_.mutable_traffic_permission(); }
  v1::Resource r_;
};

// A Service in |ns| whose endpoints are the workloads |endpoints| ("ns/name" at ip), with one port
// port -> target resolved to |protocol|.
v1::Resource ServiceOf(const std::string& ns, const std::string& name,
                       std::initializer_list<std::pair<std::string, std::string>> endpoints, uint32_t port,
                       uint32_t target, v1::AppProtocol protocol);

control::ConfigState StateOf(std::initializer_list<v1::Resource> resources);

net::IpAddr Ip(const char* text);  // either family
tls::SpiffeId Id(const std::string& ns, const std::string& sa, const std::string& td = kTrustDomain);
// The proxy's view of a destination (what AuthzRequest::destination points at).
Workload Dest(const std::string& ns, const std::string& name, const char* ip);

}  // namespace zm::agent::policy::testing
