#include "agent/traffic/router.h"

#include <algorithm>

namespace zm::traffic {
namespace {

// |per_request|: the pick is for one HTTP request (out->load holds it), else for a connection.
RouteStatus PickEndpoint(Balancer& lb, const agent::MeshSnapshot& snap, const agent::Service& svc, uint16_t port,
                         const std::vector<net::IpAddr>& tried, Route* out, std::string* why, bool per_request,
                         int family) {
  const agent::ServicePortMap* pm = svc.FindPort(port);
  if (pm == nullptr) {
    *why = "service " + svc.Key() + " has no port " + std::to_string(port);
    return RouteStatus::kNoPort;
  }
  PickRequest req;
  req.service = &svc;
  req.target_port = pm->target_port;
  req.local_node = &snap.node();
  req.exclude = &tried;
  req.family = family;
  RequestLoad load;
  if (per_request) req.load = &load;
  size_t idx = 0;
  Lease lease;
  switch (lb.Pick(req, &idx, &lease)) {
    case PickStatus::kOverflow:
      *why = "service " + svc.Key() + ": circuit breaker open (too many connections)";
      return RouteStatus::kOverflow;
    case PickStatus::kNoEndpoint:
      *why = "service " + svc.Key() + " has no " + (tried.empty() ? "" : "untried ") + "endpoint" +
             (family == AF_INET6 ? " of IPv6" : "");
      return RouteStatus::kNoEndpoint;
    case PickStatus::kOk:
      break;
  }
  out->service = &svc;
  out->endpoint = &svc.endpoints[idx];
  out->service_port = port;
  out->addr = net::SockAddr{out->endpoint->ip, pm->target_port};
  out->lease = std::move(lease);
  out->load = std::move(load);
  return RouteStatus::kOk;
}

bool HasEndpoints(const agent::Service& s, int family) {
  return std::any_of(s.endpoints.begin(), s.endpoints.end(),
                     [family](const agent::ServiceEndpoint& e) { return family == 0 || e.ip.family() == family; });
}

// The Service of each backend ref (nullptr when unknown) and, in *available, whether it can take a connection now:
// it exists, has the referenced port and has endpoints (of |family|, unless 0).
std::vector<const agent::Service*> ResolveBackends(const agent::MeshSnapshot& snap,
                                                   const std::vector<agent::BackendRef>& refs, int family,
                                                   std::vector<bool>* available) {
  std::vector<const agent::Service*> out;
  out.reserve(refs.size());
  for (const auto& b : refs) {
    const agent::Service* s = snap.FindService(b.ns, b.name);
    out.push_back(s);
    available->push_back(s != nullptr && s->FindPort(b.port) != nullptr && HasEndpoints(*s, family));
  }
  return out;
}

RouteStatus RouteService(Balancer& lb, const agent::MeshSnapshot& snap, const agent::Service& vip_service,
                         uint16_t port, const std::vector<net::IpAddr>& tried, Route* out, std::string* why,
                         bool per_request, int family) {
  const agent::TrafficSplit* split = vip_service.FindSplit(port);
  if (split == nullptr) return PickEndpoint(lb, snap, vip_service, port, tried, out, why, per_request, family);
  std::vector<bool> available;
  auto backends = ResolveBackends(snap, split->backends, family, &available);
  int i = lb.PickBackend(vip_service, *split, available);
  if (i < 0) {
    *why = "route " + split->route + " (parent " + vip_service.Key() + " " +
           (vip_service.vips.empty() ? std::string() : vip_service.vips.front().ToString()) + ":" +
           std::to_string(port) + "): no backend with weight > 0 has endpoints";
    return RouteStatus::kNoEndpoint;
  }
  return PickEndpoint(lb, snap, *backends[static_cast<size_t>(i)], split->backends[static_cast<size_t>(i)].port, tried,
                      out, why, per_request, family);
}

}  // namespace

RouteStatus RouteToService(Balancer& lb, const agent::MeshSnapshot& snap, const agent::Service& vip_service,
                           uint16_t port, const std::vector<net::IpAddr>& tried, Route* out, std::string* why,
                           int family) {
  return RouteService(lb, snap, vip_service, port, tried, out, why, /*per_request=*/false, family);
}

RouteStatus RouteHttpRequest(Balancer& lb, const agent::MeshSnapshot& snap, const agent::Service& vip_service,
                             uint16_t port, const agent::HttpRouteRule* rule, Route* out, std::string* why,
                             int family) {
  static const std::vector<net::IpAddr> kNoneTried;
  // A request no HTTPRoute rule claims goes where a connection to this port would go: the TCPRoute split attached
  // to it (the demo's and the console wizard's canary), else the Service's own endpoints -- now per request.
  if (rule == nullptr) return RouteService(lb, snap, vip_service, port, kNoneTried, out, why, true, family);
  if (rule->backends.empty()) return PickEndpoint(lb, snap, vip_service, port, kNoneTried, out, why, true, family);
  std::vector<bool> available;
  auto backends = ResolveBackends(snap, rule->backends, family, &available);
  int i = lb.PickHttpBackend(vip_service, *rule, available);
  if (i < 0) {
    *why = "route rule " + rule->key + ": no backend with weight > 0 has endpoints";
    return RouteStatus::kNoEndpoint;
  }
  auto idx = static_cast<size_t>(i);
  return PickEndpoint(lb, snap, *backends[idx], rule->backends[idx].port, kNoneTried, out, why, true, family);
}

RouteStatus RouteToBackend(Balancer& lb, const agent::MeshSnapshot& snap, const agent::BackendRef& ref, Route* out,
                           std::string* why, int family) {
  static const std::vector<net::IpAddr> kNoneTried;
  const agent::Service* svc = snap.FindService(ref.ns, ref.name);
  if (svc == nullptr) {
    *why = "service " + ref.ns + "/" + ref.name + " is unknown";
    return RouteStatus::kNoEndpoint;
  }
  return PickEndpoint(lb, snap, *svc, ref.port, kNoneTried, out, why, false, family);
}

RouteStatus Reroute(Balancer& lb, const agent::MeshSnapshot& snap, const std::vector<net::IpAddr>& tried, Route* r,
                    std::string* why, bool per_request, int family) {
  const agent::Service* svc = r->service;
  uint16_t port = r->service_port;
  r->lease.Release();
  r->load.Release();
  return PickEndpoint(lb, snap, *svc, port, tried, r, why, per_request, family);
}

}  // namespace zm::traffic
