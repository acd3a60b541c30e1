// Per-request GRPCRoute matching (Gateway API semantics) on an HTTP/2 request: the path "/<service>/<method>" names the
// call. Among the matching rules the most specific wins: the most characters of an exact service match, then of an
// exact method match, then the most header matches; ties go to the earlier rule (regex matches count no characters).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/state/http_route.h"

namespace zm::traffic {

// "/pkg.Service/Method" -> "pkg.Service", "Method"; false when |path| is not a gRPC call's (two non-empty elements).
bool ParseGrpcPath(std::string_view path, std::string_view* service, std::string_view* method);

// |m| holds for the call |service|/|method| (both empty when the path is not a gRPC call's: only a match without a
// method match can hold then).
bool GrpcMethodMatches(const agent::GrpcMethodMatch& m, std::string_view service, std::string_view method);

// nullptr when no rule matches. |headers|: names lower case, in arrival order.
const agent::HttpRouteRule* MatchGrpcRule(const std::vector<const agent::HttpRouteRule*>& rules, std::string_view path,
                                          const std::vector<std::pair<std::string, std::string>>* headers,
                                          const agent::HttpRouteMatch** matched = nullptr);

}  // namespace zm::traffic
