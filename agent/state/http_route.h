// HTTPRoutes and GRPCRoutes (Gateway API, GAMMA form) as the proxy matches them: the rules of every route whose parent
// is a Service, with regexes compiled once per config version (RE2: linear time, no backtracking on request data). A
// GRPCRoute rule is an HttpRouteRule whose matches carry a gRPC method match (backends and filters are the same).
#pragma once

#include <re2/re2.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/state/backend_ref.h"
#include "agent/state/route_policy.h"

namespace zm::agent {

enum class HttpMatchType : uint8_t { kExact, kPrefix, kRegex };

struct HttpStringMatch {
  HttpMatchType type = HttpMatchType::kExact;
  std::string name;  // header (lower case) or query parameter name; empty for paths
  std::string value;
  std::shared_ptr<const re2::RE2> regex;  // set for kRegex
};

// A GRPCRoute method match on the request path "/<service>/<method>" (kExact or kRegex, regexes full matches).
struct GrpcMethodMatch {
  HttpMatchType type = HttpMatchType::kExact;
  std::string service;                                          // empty: every service
  std::string method;                                           // empty: every method
  std::shared_ptr<const re2::RE2> service_regex, method_regex;  // kRegex, for the fields that are set
};

// Every condition must hold; an empty one holds for every request.
struct HttpRouteMatch {
  bool has_path = false;
  HttpStringMatch path;
  std::vector<HttpStringMatch> headers;
  std::vector<HttpStringMatch> query_params;
  std::string method;  // empty: every method
  // GRPCRoute rules (Service::grpc_routes) only: their method match; their other conditions are |headers|.
  bool has_grpc_method = false;
  GrpcMethodMatch grpc_method;
};

struct HttpHeaderModifier {
  std::vector<std::pair<std::string, std::string>> set;
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
};

struct HttpUrlRewrite {
  enum class Path : uint8_t { kUnchanged, kReplaceFull, kReplacePrefix };
  std::string hostname;  // empty: unchanged
  Path path_type = Path::kUnchanged;
  std::string path;
};

// Gateway API rules[].retry: a failed try (a status in |codes|, a connect failure, a reset before the response) is
// tried again up to |attempts| times. attempts 0: no retries.
struct HttpRetryPolicy {
  uint32_t attempts = 0;
  std::vector<uint16_t> codes;
  std::chrono::milliseconds backoff{0};  // base of the jittered exponential backoff; 0: the proxy's default
};

// A RequestMirror filter: |percent| of the rule's requests are copied to an endpoint of |backend| (weight unused).
struct HttpRequestMirror {
  BackendRef backend;
  uint32_t percent = 100;
};

struct HttpRouteRule {
  std::string key;                      // "<namespace>/<route>#<index>": the balancer's weighted-choice state per rule
  std::vector<HttpRouteMatch> matches;  // none: every request
  std::vector<BackendRef> backends;     // none: the parent Service itself
  std::vector<HttpHeaderModifier> request_headers;
  std::vector<HttpHeaderModifier> response_headers;
  bool has_rewrite = false;
  HttpUrlRewrite rewrite;
  std::chrono::milliseconds request_timeout{0};          // timeouts.request: the whole request, retries included
  std::chrono::milliseconds backend_request_timeout{0};  // timeouts.backendRequest: each try; 0: none
  HttpRetryPolicy retry;
  std::vector<HttpRequestMirror> mirrors;
  HttpRateLimitPolicy rate_limit;  // from a ServicePolicy targeting the route (or this rule)
  HttpFaultPolicy fault;
};

// The rules of the routes attached to one parent port (0: every port), in Gateway API precedence order.
struct HttpRouting {
  uint16_t port = 0;
  std::vector<HttpRouteRule> rules;
};

}  // namespace zm::agent
