// Per-request HTTPRoute matching (Gateway API semantics): among the rules attached to a Service port, the matching
// rule whose match is the most specific wins — exact path, then the longest path prefix, then a method match, then
// the most header matches, then the most query-parameter matches; ties go to the earlier rule.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/state/http_route.h"

namespace zm::traffic {

struct HttpRequestView {
  std::string_view method;
  std::string_view path;   // the request target up to '?'
  std::string_view query;  // after '?', without it
  // Header names lower case, in arrival order (a name may repeat).
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
};

// nullptr when no rule matches (the request goes to the parent Service itself).
const agent::HttpRouteRule* MatchHttpRule(const std::vector<const agent::HttpRouteRule*>& rules,
                                          const HttpRequestView& req, const agent::HttpRouteMatch** matched = nullptr);

// Every header match holds for |headers| (names lower case; a repeated header matches when one of its values does).
bool HeadersMatch(const std::vector<agent::HttpStringMatch>& matches,
                  const std::vector<std::pair<std::string, std::string>>* headers);

// Gateway API PathPrefix: element-wise ("/foo" matches "/foo", "/foo/" and "/foo/bar", not "/foobar").
bool PathPrefixMatches(std::string_view prefix, std::string_view path);

}  // namespace zm::traffic
