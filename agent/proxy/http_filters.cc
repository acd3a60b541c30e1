#include "agent/proxy/http_filters.h"

#include <algorithm>
#include <cctype>

namespace zm::proxy {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

using Headers = std::vector<std::pair<std::string, std::string>>;

void Remove(Headers* h, const std::string& lower) {
  h->erase(std::remove_if(h->begin(), h->end(), [&](const auto& kv) { return kv.first == lower; }), h->end());
}

void Remove(HttpRequestHead* head, const std::string& lower) {
  Remove(&head->headers, lower);
}

// ReplacePrefixMatch: "/foo" matched "/foo/bar" -> "<replacement>/bar", one slash at the seam.
std::string ReplacePrefix(std::string_view path, std::string_view prefix, std::string_view replacement) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  std::string_view rest = prefix == "/" ? path : path.substr(std::min(prefix.size(), path.size()));
  std::string out(replacement);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (rest.empty()) return out.empty() ? "/" : out;
  if (out == "/") out.clear();
  if (rest.front() != '/') out.push_back('/');
  out.append(rest);
  return out;
}

}  // namespace

void ApplyHeaderModifier(const agent::HttpHeaderModifier& m, Headers* headers) {
  for (const auto& [name, value] : m.set) {
    std::string n = Lower(name);
    Remove(headers, n);
    headers->emplace_back(n, value);
  }
  for (const auto& [name, value] : m.add) headers->emplace_back(Lower(name), value);
  for (const auto& name : m.remove) Remove(headers, Lower(name));
}

void ApplyRequestFilters(const agent::HttpRouteRule& rule, const agent::HttpRouteMatch* matched,
                         HttpRequestHead* head) {
  for (const auto& m : rule.request_headers) ApplyHeaderModifier(m, &head->headers);
  if (!rule.has_rewrite) return;
  const agent::HttpUrlRewrite& rw = rule.rewrite;
  if (!rw.hostname.empty()) {
    Remove(head, "host");
    head->headers.emplace_back("host", rw.hostname);
  }
  std::string_view query = head->Query();
  std::string path;
  switch (rw.path_type) {
    case agent::HttpUrlRewrite::Path::kUnchanged:
      return;
    case agent::HttpUrlRewrite::Path::kReplaceFull:
      path = rw.path;
      break;
    case agent::HttpUrlRewrite::Path::kReplacePrefix:
      // The controller only admits ReplacePrefixMatch on rules whose matches are all PathPrefix.
      if (matched == nullptr || !matched->has_path || matched->path.type != agent::HttpMatchType::kPrefix) return;
      path = ReplacePrefix(head->Path(), matched->path.value, rw.path);
      break;
  }
  if (!query.empty() || head->target.find('?') != std::string::npos) path.append("?").append(query);
  head->target = std::move(path);
}

}  // namespace zm::proxy
