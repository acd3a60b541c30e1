// Services as the proxy sees them: a VIP with port mappings, endpoints, an optional weighted split (TCPRoute in the
// GAMMA form: the route's parent is this Service) and the traffic policy of the Service (ServicePolicy).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/state/backend_ref.h"
#include "agent/state/http_route.h"
#include "common/net/ip_addr.h"

namespace zm::agent {

// kLeastRequest and kEwma balance HTTP and gRPC ports per request (in-flight requests; peak-EWMA latency x in-flight);
// on L4 ports, where there are no requests, both mean power of two choices over connections.
enum class LbAlgorithm : uint8_t { kRoundRobin, kLeastConnections, kPowerOfTwoChoices, kLeastRequest, kEwma };
const char* LbAlgorithmName(LbAlgorithm a);
// "RoundRobin", "LeastConnections", "PowerOfTwoChoices", "LeastRequest", "EWMA"; false for anything else.
bool ParseLbAlgorithm(const std::string& s, LbAlgorithm* out);

// What a port speaks, as the controller resolved it (appProtocol or port name): HTTP/1.1, HTTP/2 cleartext (h2c) and
// gRPC ports take the L7 path; TCP ports stay L4.
enum class PortProtocol : uint8_t { kTcp, kHttp, kHttp2, kGrpc };

struct ServicePortMap {
  uint16_t port = 0;
  uint16_t target_port = 0;
  PortProtocol protocol = PortProtocol::kTcp;
};

struct ServiceEndpoint {
  net::IpAddr ip;        // either family: a dual-stack pod is one endpoint per address
  std::string workload;  // "<namespace>/<name>" when a mesh workload, else ""
  std::string node;      // "" when unknown (outside the mesh)
};

// Connections to the parent VIP on |port| (0: every port) go to the backends by weight.
struct TrafficSplit {
  std::string route;  // "<namespace>/<name>" of the route, for logs and the config dump
  uint16_t port = 0;
  std::vector<BackendRef> backends;
};

// Per destination service; zero values mean "not set" (the proxy's defaults apply).
struct ServiceTrafficPolicy {
  std::string name;  // "<namespace>/<name>" of the ServicePolicy, "" when none applies
  LbAlgorithm algorithm = LbAlgorithm::kRoundRobin;
  bool locality_preference = false;
  std::chrono::milliseconds connect_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  uint32_t retry_attempts = 0;  // extra connect attempts on other endpoints
  uint32_t max_connections = 0;
  uint32_t max_pending_connections = 0;
  uint32_t outlier_consecutive_failures = 0;  // 0: outlier detection off
  std::chrono::milliseconds outlier_base_ejection{30000};
  uint32_t outlier_max_ejection_percent = 10;
  double rate_limit_per_second = 0;  // new connections per second (0: unlimited), enforced at the destination node
  uint32_t rate_limit_burst = 0;
  bool rate_limit_per_source = false;  // one bucket per source identity instead of one for the service
  // spec.http.rateLimit: requests to each endpoint pod on the Service's HTTP ports, limited by its destination node.
  HttpRateLimitPolicy http_rate_limit;
};

struct Service {
  std::string name;
  std::string ns;
  std::vector<net::IpAddr> vips;  // every cluster IP (one per family); empty = no VIP (only a split backend)
  std::vector<ServicePortMap> ports;
  std::vector<ServiceEndpoint> endpoints;
  std::vector<TrafficSplit> splits;
  std::vector<HttpRouting> http_routes;  // HTTPRoutes whose parent is this Service
  std::vector<HttpRouting> grpc_routes;  // GRPCRoutes whose parent is this Service (HTTP/2 and gRPC ports)
  ServiceTrafficPolicy policy;

  std::string Key() const { return ns + "/" + name; }
  const ServicePortMap* FindPort(uint16_t port) const;
  const TrafficSplit* FindSplit(uint16_t port) const;  // an exact port match wins over a port-0 split
  // The HTTP rules for |port|: its own routes' rules, then those of routes attached to every port; nullptr when none.
  std::vector<const HttpRouteRule*> HttpRulesFor(uint16_t port) const;
  std::vector<const HttpRouteRule*> GrpcRulesFor(uint16_t port) const;  // likewise, of the GRPCRoutes
};

}  // namespace zm::agent
