#include "agent/traffic/http_match.h"

#include <tuple>

namespace zm::traffic {
namespace {

bool ValueMatches(const agent::HttpStringMatch& m, std::string_view v) {
  switch (m.type) {
    case agent::HttpMatchType::kExact:
      return v == m.value;
    case agent::HttpMatchType::kPrefix:
      return PathPrefixMatches(m.value, v);
    case agent::HttpMatchType::kRegex:
      // Gateway API regex matches are full matches; a regex that did not compile never matches.
      return m.regex != nullptr && m.regex->ok() && re2::RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *m.regex);
  }
  return false;
}

bool HeaderMatches(const agent::HttpStringMatch& m, const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (name == m.name && ValueMatches(m, value)) return true;
  }
  return false;
}

bool QueryMatches(const agent::HttpStringMatch& m, std::string_view query) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // The first occurrence of a parameter decides, as Gateway API recommends.
    if (name == m.name) return ValueMatches(m, value);
  }
  return false;
}

bool Matches(const agent::HttpRouteMatch& m, const HttpRequestView& req) {
  if (m.has_path && !ValueMatches(m.path, req.path)) return false;
  if (!m.method.empty() && m.method != req.method) return false;
  if (!HeadersMatch(m.headers, req.headers)) return false;
  for (const auto& q : m.query_params) {
    if (!QueryMatches(q, req.query)) return false;
  }
  return true;
}

// Larger is more specific. A match without a path is PathPrefix "/" (Gateway API's default); regexes rank below
// prefixes (their precedence is implementation-specific).
using Specificity = std::tuple<int, size_t, bool, size_t, size_t>;
Specificity SpecificityOf(const agent::HttpRouteMatch& m) {
  int kind = 1;
  size_t prefix_len = 1;
  if (m.has_path) {
    kind = m.path.type == agent::HttpMatchType::kExact ? 2 : m.path.type == agent::HttpMatchType::kPrefix ? 1 : 0;
    prefix_len = m.path.type == agent::HttpMatchType::kPrefix ? m.path.value.size() : 0;
  }
  return {kind, prefix_len, !m.method.empty(), m.headers.size(), m.query_params.size()};
}

}  // namespace

bool HeadersMatch(const std::vector<agent::HttpStringMatch>& matches,
                  const std::vector<std::pair<std::string, std::string>>* headers) {
  static const std::vector<std::pair<std::string, std::string>> kNone;
  for (const auto& h : matches) {
    if (!HeaderMatches(h, headers != nullptr ? *headers : kNone)) return false;
  }
  return true;
}

bool PathPrefixMatches(std::string_view prefix, std::string_view path) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  if (prefix == "/" || prefix.empty()) return true;
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

const agent::HttpRouteRule* MatchHttpRule(const std::vector<const agent::HttpRouteRule*>& rules,
                                          const HttpRequestView& req, const agent::HttpRouteMatch** matched) {
  static const agent::HttpRouteMatch kMatchAll;
  const agent::HttpRouteRule* best = nullptr;
  const agent::HttpRouteMatch* best_match = nullptr;
  Specificity best_spec{};
  for (const agent::HttpRouteRule* rule : rules) {
    auto consider = [&](const agent::HttpRouteMatch& m) {
      if (!Matches(m, req)) return;
      Specificity s = SpecificityOf(m);
      if (best == nullptr || s > best_spec) {
        best = rule;
        best_match = &m;
        best_spec = s;
      }
    };
    if (rule->matches.empty()) consider(kMatchAll);  // a rule without matches takes every request
    for (const auto& m : rule->matches) consider(m);
  }
  if (matched != nullptr) *matched = best_match;
  return best;
}

}  // namespace zm::traffic
