// The interface each host route (/32) of the node's main routing table leads to: with a point-to-point CNI (ptp,
// Calico, Cilium's veth mode) a pod's IPv4 route names its veth. Tells the capture program which pod is behind a veth
// before the pod has sent any IPv4 (its IPv6 names no IPv4 address); bridge CNIs route via the bridge, and the
// program learns those from the pod's first IPv4 packets instead.
#pragma once

#include <cstdint>
#include <map>
#include <string_view>

#include "common/net/ip_addr.h"

namespace zm::agent::bpf {

// Pod address -> ifindex, for the host routes of the main table in the caller's netns, both families: the /32 routes
// of /proc/net/route and the /128 routes of /proc/net/ipv6_route (an IPv6-only pod's route names its veth too).
std::map<net::IpAddr, uint32_t> HostRouteInterfaces();
// IPv4 (network byte order) -> ifindex from the text of /proc/net/route; names are resolved with if_nametoindex.
std::map<uint32_t, uint32_t> ParseHostRoutes(std::string_view proc_net_route);
// IPv6 -> ifindex from the text of /proc/net/ipv6_route. The node's own addresses (those with a local route), anycast
// and cached routes are left out.
std::map<net::IpAddr, uint32_t> ParseHostRoutes6(std::string_view proc_net_ipv6_route);

}  // namespace zm::agent::bpf
