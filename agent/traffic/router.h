// Service resolution for a connection whose original destination is a Service VIP: the weighted split (if a route
// has the Service as parent) picks a backend Service, the balancer picks one of its endpoints, the port mapping gives
// the endpoint port.
#pragma once

#include <string>
#include <vector>

#include "agent/state/mesh_snapshot.h"
#include "agent/traffic/balancer.h"
#include "common/net/ip_addr.h"

namespace zm::traffic {

struct Route {
  const agent::Service* service = nullptr;  // the Service whose endpoint was picked (a split backend or the VIP's)
  const agent::ServiceEndpoint* endpoint = nullptr;
  uint16_t service_port = 0;  // the port on |service|
  net::SockAddr addr;         // endpoint IP : target port
  Lease lease;
  RequestLoad load;  // a pick for one HTTP request (RouteHttpRequest, Reroute per request): its hold on the endpoint
};

enum class RouteStatus { kOk, kNoPort, kNoEndpoint, kOverflow };

// |tried| lists endpoint IPs this connection already failed on. Pointers in *out point into |snap|. |family|: the
// client's (AF_INET, AF_INET6); only endpoints of that family are picked, and a split backend without any is
// unavailable. 0: any family.
RouteStatus RouteToService(Balancer& lb, const agent::MeshSnapshot& snap, const agent::Service& vip_service,
                           uint16_t port, const std::vector<net::IpAddr>& tried, Route* out, std::string* why,
                           int family = 0);
// One HTTP request to |vip_service|:|port| that matched |rule|: a backend by the rule's weights, then an endpoint of
// it. |rule| nullptr (no HTTPRoute rule matched, or none exists): routed as RouteToService routes a connection (a
// TCPRoute split on the port, else the Service's endpoints), request by request.
RouteStatus RouteHttpRequest(Balancer& lb, const agent::MeshSnapshot& snap, const agent::Service& vip_service,
                             uint16_t port, const agent::HttpRouteRule* rule, Route* out, std::string* why,
                             int family = 0);
// An endpoint of |ref|'s Service and port (a RequestMirror's backend: no split, no VIP).
RouteStatus RouteToBackend(Balancer& lb, const agent::MeshSnapshot& snap, const agent::BackendRef& ref, Route* out,
                           std::string* why, int family = 0);
// Another endpoint of r->service (a retry keeps the backend the split chose); |per_request|: for an HTTP request's
// retry (r->load holds it).
RouteStatus Reroute(Balancer& lb, const agent::MeshSnapshot& snap, const std::vector<net::IpAddr>& tried, Route* r,
                    std::string* why, bool per_request = false, int family = 0);

}  // namespace zm::traffic
