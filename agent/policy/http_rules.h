// The http part of a TrafficPermission, compiled for the destination proxy's per-request check: each rule is methods,
// paths (Istio's forms) and header conditions, all of which must hold; a policy's rules are ORed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/proxy/options.h"
#include "zeromesh/v1/resources.pb.h"

namespace zm::agent::policy {

struct PathPattern {
  enum class Kind : uint8_t { kExact, kPrefix, kSuffix, kAny };
  Kind kind = Kind::kExact;
  std::string text;  // without the '*'

  bool Matches(std::string_view path) const;
};

struct HeaderCondition {
  std::string name;  // lower case
  bool prefix = false;
  std::string value;  // exact value, or the prefix ("" with prefix: present)
};

struct HttpRule {
  std::vector<std::string> methods;  // empty: any
  std::vector<PathPattern> paths;    // empty: any
  std::vector<HeaderCondition> headers;

  bool Matches(const proxy::HttpRequestAttrs& req) const;
};

// "/exact", "/prefix*", "*suffix" or "*"; false with *error otherwise (the controller refuses these already; the agent
// checks again: a misread rule could open what it was meant to close).
bool ParsePathPattern(std::string_view text, PathPattern* out, std::string* error);
bool CompileHttpRules(const zeromesh::v1::TrafficPermission& tp, std::vector<HttpRule>* out, std::string* error);

}  // namespace zm::agent::policy
