// What a route's ServicePolicy (spec.http) decides for one request on the source node proxy, before the request goes
// upstream, for both HTTP paths (Http1Conn, H2Conn): refused by the rule's local rate limit (429 with Retry-After, or
// gRPC RESOURCE_EXHAUSTED), aborted by fault injection (the configured status, or a gRPC status), or delayed.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/state/http_route.h"
#include "agent/state/mesh_snapshot.h"
#include "agent/traffic/route_rate_limiter.h"
#include "common/tls/spiffe.h"

namespace zm::proxy {

// A response the proxy gives itself, without contacting a backend.
struct LocalReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names, besides content-type / length
  std::string body;
  uint32_t grpc_status = 0;  // for a gRPC request: a trailers-only response with this status
  std::string grpc_message;
  const char* fault = "";  // the access log's "fault": "ratelimited" or "abort"
  std::string policy;      // the ServicePolicy that decided
};

struct RoutePolicyVerdict {
  bool reply = false;  // answer |local| now
  LocalReply local;
  std::chrono::milliseconds delay{0};  // > 0: hold the request this long before it goes upstream
};

// The rate limit first (a refused request is not faulted), then the fault: an abort, else maybe a delay. |src_ip|:
// the client (its SPIFFE ID, else its address, keys a perSource bucket). |limiter| nullptr: no rate limit.
RoutePolicyVerdict DecideRoutePolicy(traffic::RouteRateLimiter* limiter, const agent::HttpRouteRule& rule,
                                     const agent::MeshSnapshot* snap, const net::IpAddr& src_ip);

// The 429 a local rate limit answers (Retry-After, x-zeromesh-ratelimited; gRPC RESOURCE_EXHAUSTED), source or
// destination side alike.
LocalReply RateLimitedReply(const std::string& policy, uint32_t retry_after_s);

// The destination side: a request to pod port |dst| of a Service whose ServicePolicy has spec.http.rateLimit takes a
// token of the (Service, pod) bucket (per source with perSource: |source_id|, else the client's address). True, with
// |*reply|, when refused. |limiter| nullptr or no such Service: false.
bool DestinationRateLimited(traffic::RouteRateLimiter* limiter, const agent::MeshSnapshot& snap,
                            const net::SockAddr& dst, const tls::SpiffeId* source_id, const net::IpAddr& src_ip,
                            LocalReply* reply);

// Whether a response of |status| to |method| carries no body (HEAD; 204 and 304 by definition).
bool BodylessReply(const std::string& method, int status);

// |reply| as an HTTP/1.1 response to |method|; |close| adds "connection: close".
std::string SerializeLocalReply(const LocalReply& reply, const std::string& method, bool close);

}  // namespace zm::proxy
