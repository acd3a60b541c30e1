// One TrafficPermission resolved against the workloads of a config: everything Evaluate() needs is precomputed, so
// matching a connection only compares integers and existing strings (no allocation).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/policy/http_rules.h"
#include "agent/proxy/options.h"
#include "common/net/ip_addr.h"
#include "common/tls/spiffe.h"

namespace zm::agent::policy {

// A mesh workload picked by one of the policy's source workload selectors, with the identity it must present.
struct SelectedSource {
  net::IpAddr ip;  // one entry per address of a dual-stack workload
  std::string ns;
  std::string service_account;

  struct ByIp {  // ordering for sort / equal_range by IP
    bool operator()(const SelectedSource& a, const SelectedSource& b) const { return a.ip < b.ip; }
    bool operator()(const SelectedSource& a, const net::IpAddr& ip) const { return a.ip < ip; }
    bool operator()(const net::IpAddr& ip, const SelectedSource& b) const { return ip < b.ip; }
  };
};

struct CompiledPolicy {
  std::string id;  // "<namespace>/<name>": the decision's policy label
  bool deny = false;
  bool any_source = false;  // the policy lists no source at all
  std::vector<tls::SpiffeId> identities;
  std::vector<std::string> namespaces;
  std::vector<SelectedSource> selected;  // sorted by ip; an IP may repeat (host-network pods share one)
  std::vector<net::Cidr> ip_blocks;      // either family; a block never matches an address of the other
  std::vector<uint16_t> ports;           // empty: every port
  std::vector<HttpRule> http;            // empty: an L4 permission (every request of a matching connection)

  bool has_http() const { return !http.empty(); }
  bool MatchesPort(uint16_t port) const;
  bool MatchesRequest(const proxy::HttpRequestAttrs& req) const;  // one of the http rules holds
  // `trust_domain` is the mesh's: a workload selector only vouches for identities of mesh workloads.
  bool MatchesSource(const proxy::AuthzRequest& req, std::string_view trust_domain) const;
};

}  // namespace zm::agent::policy
