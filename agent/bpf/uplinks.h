// Which interfaces are the node's uplinks, found from the routing table instead of named in values: those that carry
// other nodes' pods (the route each remote pod IP takes: a NIC of any name, a bond, or an overlay's tunnel device such
// as flannel.1 or vxlan.calico, where decapsulated traffic arrives) and the default route's (traffic from outside the
// cluster). The agent re-evaluates them when the workloads or the links change and on its periodic pass.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace zm::agent::bpf {

struct Ipv4Route {
  std::string iface;
  uint32_t dst_be = 0;   // network byte order
  uint32_t mask_be = 0;  // network byte order
};

// The main table's IPv4 routes from the text of /proc/net/route (multipath routes show their first hop there).
std::vector<Ipv4Route> ParseIpv4Routes(std::string_view proc_net_route);
// Longest-prefix route of each remote pod IP (network byte order), plus the default route's interface; "lo" never.
// Empty when no other node's pod is known and there is no default route: nothing then needs an uplink to reach a local
// pod from another node, and a STRICT pod's veth guard refuses plaintext from anywhere else.
std::set<std::string> FindUplinks(const std::vector<Ipv4Route>& routes, const std::vector<uint32_t>& remote_pod_ips);
// The same from this netns's /proc/net/route.
std::set<std::string> FindUplinks(const std::vector<uint32_t>& remote_pod_ips);

// Interfaces that carry a route wider than /32 (a subnet, the default route): the node's own networks, never a pod's
// veth (pods have /32 routes or none). Tells a veth that is a wire of the node (a simulated node's uplink, a veth to
// a router namespace) from a pod's.
std::set<std::string> NetworkInterfaces(const std::vector<Ipv4Route>& routes);
std::string ReadProcNetRoute();

}  // namespace zm::agent::bpf
