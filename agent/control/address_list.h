// The addresses of a Workload (`ips`, else `ip`) and of a Service (`vips`, else `vip`) as the controller sends them:
// either family, the primary first, each once. The state adapter and the policy compiler read them alike.
#pragma once

#include <string>
#include <vector>

#include "common/net/ip_addr.h"
#include "zeromesh/v1/resources.pb.h"

namespace zm::agent::control {

// False with |error| ("bad IP '...'") when an address does not parse; an empty |w.ip| with no |ips| is an error too.
bool WorkloadIps(const zeromesh::v1::Workload& w, std::vector<net::IpAddr>* out, std::string* error);
// An empty vip and vips is no VIP (a Service reachable only as a split backend): an empty list.
bool ServiceVips(const zeromesh::v1::Service& s, std::vector<net::IpAddr>* out, std::string* error);

}  // namespace zm::agent::control
