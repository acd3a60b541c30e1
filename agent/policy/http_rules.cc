#include "agent/policy/http_rules.h"

#include <algorithm>
#include <cctype>

namespace zm::agent::policy {
namespace v1 = zeromesh::v1;

bool PathPattern::Matches(std::string_view path) const {
  switch (kind) {
    case Kind::kExact:
      return path == text;
    case Kind::kPrefix:
      return path.starts_with(text);
    case Kind::kSuffix:
      return path.ends_with(text);
    case Kind::kAny:
      return !path.empty();
  }
  return false;
}

bool HttpRule::Matches(const proxy::HttpRequestAttrs& req) const {
  if (!methods.empty() && std::find(methods.begin(), methods.end(), req.method) == methods.end()) return false;
  if (!paths.empty() &&
      std::none_of(paths.begin(), paths.end(), [&](const PathPattern& p) { return p.Matches(req.path); })) {
    return false;
  }
  for (const auto& h : headers) {
    bool found = false;
    if (req.headers != nullptr) {
      for (const auto& [name, value] : *req.headers) {
        if (name == h.name && (h.prefix ? std::string_view(value).starts_with(h.value) : value == h.value)) {
          found = true;
          break;
        }
      }
    }
    if (!found) return false;
  }
  return true;
}

bool ParsePathPattern(std::string_view text, PathPattern* out, std::string* error) {
  size_t stars = static_cast<size_t>(std::count(text.begin(), text.end(), '*'));
  if (text == "*") {
    out->kind = PathPattern::Kind::kAny;
    out->text.clear();
    return true;
  }
  if (text.empty() || stars > 1) {
    *error = "path '" + std::string(text) + "' is not \"/exact\", \"/prefix*\", \"*suffix\" or \"*\"";
    return false;
  }
  if (stars == 0 || text.back() == '*') {
    if (text.front() != '/') {
      *error = "path '" + std::string(text) + "' must start with '/'";
      return false;
    }
    out->kind = stars == 0 ? PathPattern::Kind::kExact : PathPattern::Kind::kPrefix;
    out->text.assign(stars == 0 ? text : text.substr(0, text.size() - 1));
    return true;
  }
  if (text.front() != '*') {
    *error = "path '" + std::string(text) + "': '*' may only stand at the start or the end";
    return false;
  }
  out->kind = PathPattern::Kind::kSuffix;
  out->text.assign(text.substr(1));
  return true;
}

bool CompileHttpRules(const v1::TrafficPermission& tp, std::vector<HttpRule>* out, std::string* error) {
  for (int i = 0; i < tp.http_size(); ++i) {
    const auto& m = tp.http(i);
    HttpRule rule;
    rule.methods.assign(m.methods().begin(), m.methods().end());
    for (const auto& p : m.paths()) {
      PathPattern pat;
      if (!ParsePathPattern(p, &pat, error)) {
        *error = "http[" + std::to_string(i) + "]: " + *error;
        return false;
      }
      rule.paths.push_back(std::move(pat));
    }
    for (const auto& h : m.headers()) {
      if (h.name().empty() || (h.type() != v1::MATCH_EXACT && h.type() != v1::MATCH_PREFIX)) {
        *error = "http[" + std::to_string(i) + "]: a header match needs a name and an exact value or a prefix";
        return false;
      }
      HeaderCondition c;
      c.name = h.name();
      std::transform(c.name.begin(), c.name.end(), c.name.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      c.prefix = h.type() == v1::MATCH_PREFIX;
      c.value = h.value();
      rule.headers.push_back(std::move(c));
    }
    out->push_back(std::move(rule));
  }
  return true;
}

}  // namespace zm::agent::policy
