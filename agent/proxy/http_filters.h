// The request filters of a matched HTTPRoute rule, applied to the parsed head before it goes upstream:
// RequestHeaderModifier (set / add / remove) and URLRewrite (hostname, ReplaceFullPath, ReplacePrefixMatch).
#pragma once

#include "agent/proxy/http1_codec.h"
#include "agent/state/http_route.h"

namespace zm::proxy {

// |matched|: the match that selected the rule (its path prefix is what ReplacePrefixMatch replaces); may be null.
void ApplyRequestFilters(const agent::HttpRouteRule& rule, const agent::HttpRouteMatch* matched, HttpRequestHead* head);

// One RequestHeaderModifier or ResponseHeaderModifier on a header list (names lower case).
void ApplyHeaderModifier(const agent::HttpHeaderModifier& m, std::vector<std::pair<std::string, std::string>>* headers);

}  // namespace zm::proxy
