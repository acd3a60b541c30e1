#include "controller/manifest/l7_route_decode.h"

#include <re2/re2.h>

#include <cctype>
#include <set>
#include <string_view>

#include "controller/manifest/traffic_decode.h"

namespace zm::manifest {
namespace v1 = zeromesh::v1;
namespace {

constexpr size_t kMaxPathLength = 1024;
constexpr size_t kMaxHeaderNameLength = 256;
constexpr size_t kMaxHeaderValueLength = 4096;
constexpr size_t kMaxRetryAttempts = 10;

// A sequence of at most `max` entries, or an error; an absent or null node is an empty list.
bool List(YamlReader& r, const YAML::Node& n, const std::string& path, size_t max) {
  if (!n || n.IsNull()) return false;
  if (!n.IsSequence()) {
    r.Fail(n, "'" + path + "' must be a list");
    return false;
  }
  if (n.size() > max) {
    r.Fail(n, "'" + path + "' has " + std::to_string(n.size()) + " entries; at most " + std::to_string(max) +
                  " are allowed");
    return false;
  }
  return true;
}

// RFC 9110 token: what an HTTP header name may be.
std::string CheckHeaderName(const std::string& s) {
  if (s.empty() || s.size() > kMaxHeaderNameLength) return "must be 1 to 256 characters";
  for (unsigned char c : s) {
    if (!std::isalnum(c) && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string::npos) {
      return "'" + s + "' is not an HTTP header name";
    }
  }
  return "";
}

std::string CheckRegex(const std::string& s) {
  if (s.size() > kMaxRegexLength) return "a regular expression of at most 1024 characters is allowed";
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 re(s, opts);
  if (!re.ok()) return "'" + s + "' is not a valid regular expression (RE2 syntax): " + re.error();
  return "";
}

// Header values: printable ASCII and tabs (a control character would split or smuggle headers; other bytes need not
// be valid UTF-8, which proto3 strings must be), at most 4096 bytes.
std::string CheckHeaderValue(const std::string& s) {
  if (s.size() > kMaxHeaderValueLength) return "must be at most 4096 characters";
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c >= 0x7f) return "must be printable ASCII (no control characters)";
  }
  return "";
}

std::string CheckPath(const std::string& s) {
  if (s.empty() || s[0] != '/') return "'" + s + "' must start with '/'";
  if (s.size() > kMaxPathLength) return "must be at most 1024 characters";
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#') {
      return "'" + s + "' must be printable ASCII (percent-encode the rest) without spaces, '?' or '#'";
    }
  }
  return "";
}

// "*.example.com" or "example.com".
std::string CheckHostname(const std::string& s) {
  return CheckName(s.rfind("*.", 0) == 0 ? s.substr(2) : s);
}

// {type, name, value} of headers (HTTP and gRPC) and queryParams: Exact (default) or RegularExpression.
void DecodeNamedMatches(YamlReader& r, const YAML::Node& list, const std::string& path, bool header,
                        google::protobuf::RepeatedPtrField<v1::StringMatch>* out) {
  if (!List(r, list, path, kMaxMatchEntries)) return;
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string p = Idx(path, i);
    YAML::Node m = list[i];
    if (!r.CheckMap(m, p, {"type", "name", "value"})) continue;
    auto* sm = out->Add();
    std::string type = r.Str(m, "type", p, false).value_or("Exact");
    if (type == "RegularExpression") {
      sm->set_type(v1::MATCH_REGEX);
    } else if (type != "Exact") {
      r.Fail(m["type"], "'" + p + ".type' must be Exact or RegularExpression, not '" + type + "'");
    }
    if (auto n = r.Str(m, "name", p, true)) {
      if (std::string why = CheckHeaderName(*n); !why.empty()) r.Fail(m["name"], "'" + p + ".name': " + why);
      // Header names are case-insensitive; query parameter names are not (Gateway API).
      std::string key = *n;
      if (header) {
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      if (!seen.insert(key).second) r.Fail(m["name"], "'" + p + ".name': '" + *n + "' is matched twice");
      sm->set_name(*n);
    }
    if (auto v = r.Str(m, "value", p, true)) {
      std::string why = sm->type() == v1::MATCH_REGEX ? CheckRegex(*v) : CheckHeaderValue(*v);
      if (!why.empty()) r.Fail(m["value"], "'" + p + ".value': " + why);
      sm->set_value(*v);
    }
  }
}

void DecodeHttpMatch(YamlReader& r, const YAML::Node& m, const std::string& path, v1::HttpRouteMatch* out) {
  if (!r.CheckMap(m, path, {"path", "headers", "queryParams", "method"})) return;
  if (YAML::Node p = m["path"]; p && !p.IsNull() && r.CheckMap(p, path + ".path", {"type", "value"})) {
    auto* pm = out->mutable_path();
    std::string type = r.Str(p, "type", path + ".path", false).value_or("PathPrefix");
    std::string value = r.Str(p, "value", path + ".path", false).value_or("/");
    std::string why;
    if (type == "Exact") {
      pm->set_type(v1::MATCH_EXACT);
      why = CheckPath(value);
    } else if (type == "PathPrefix") {
      pm->set_type(v1::MATCH_PREFIX);
      why = CheckPath(value);
    } else if (type == "RegularExpression") {
      pm->set_type(v1::MATCH_REGEX);
      why = CheckRegex(value);
    } else {
      r.Fail(p["type"], "'" + path + ".path.type' must be Exact, PathPrefix or RegularExpression, not '" + type + "'");
    }
    if (!why.empty()) r.Fail(p["value"] ? p["value"] : p, "'" + path + ".path.value': " + why);
    pm->set_value(value);
  }
  DecodeNamedMatches(r, m["headers"], path + ".headers", true, out->mutable_headers());
  DecodeNamedMatches(r, m["queryParams"], path + ".queryParams", false, out->mutable_query_params());
  if (auto method = r.Str(m, "method", path, false)) {
    static const std::set<std::string> kMethods = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                   "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    if (!kMethods.count(*method)) {
      r.Fail(m["method"], "'" + path + ".method': '" + *method +
                              "' is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH");
    }
    out->set_method(*method);
  }
}

// gRPC service ("pkg.Service") and method ("Method") names: what a :path /service/method may carry.
std::string CheckGrpcName(const std::string& s, bool dots) {
  if (s.size() > kMaxPathLength) return "must be at most 1024 characters";
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && !(dots && c == '.')) return "'" + s + "' is not a gRPC name";
  }
  return "";
}

void DecodeGrpcMatch(YamlReader& r, const YAML::Node& m, const std::string& path, v1::GrpcRouteMatch* out) {
  if (!r.CheckMap(m, path, {"method", "headers"})) return;
  if (YAML::Node mm = m["method"]; mm && !mm.IsNull()) {
    std::string mp = path + ".method";
    if (r.CheckMap(mm, mp, {"type", "service", "method"})) {
      auto* gm = out->mutable_method();
      std::string type = r.Str(mm, "type", mp, false).value_or("Exact");
      if (type == "RegularExpression") {
        gm->set_type(v1::MATCH_REGEX);
      } else if (type != "Exact") {
        r.Fail(mm["type"], "'" + mp + ".type' must be Exact or RegularExpression, not '" + type + "'");
      }
      auto check = [&](const char* key, bool dots, std::string* into) {
        auto v = r.Str(mm, key, mp, false);
        if (!v) return;
        std::string why = gm->type() == v1::MATCH_REGEX ? CheckRegex(*v) : CheckGrpcName(*v, dots);
        if (v->empty()) why = "must not be empty (leave it out to match every one)";
        if (!why.empty()) r.Fail(mm[key], "'" + mp + "." + key + "': " + why);
        *into = *v;
      };
      check("service", true, gm->mutable_service());
      check("method", false, gm->mutable_method());
      if (gm->service().empty() && gm->method().empty()) r.Fail(mm, "'" + mp + "' needs a service, a method or both");
    }
  }
  DecodeNamedMatches(r, m["headers"], path + ".headers", true, out->mutable_headers());
}

void DecodeHeaderModifier(YamlReader& r, const YAML::Node& n, const std::string& path, v1::HeaderModifier* out) {
  if (!r.CheckMap(n, path, {"set", "add", "remove"})) return;
  std::set<std::string> seen;  // one action per header name (Gateway API)
  auto note = [&](const YAML::Node& at, const std::string& p, const std::string& name) {
    std::string key = name;
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!seen.insert(key).second) r.Fail(at, "'" + p + "': header '" + name + "' is modified twice");
  };
  for (const char* key : {"set", "add"}) {
    std::string lp = path + "." + key;
    YAML::Node list = n[key];
    if (!List(r, list, lp, kMaxMatchEntries)) continue;
    for (size_t i = 0; i < list.size(); ++i) {
      std::string p = Idx(lp, i);
      if (!r.CheckMap(list[i], p, {"name", "value"})) continue;
      auto* hv = std::string(key) == "set" ? out->add_set() : out->add_add();
      if (auto name = r.Str(list[i], "name", p, true)) {
        if (std::string why = CheckHeaderName(*name); !why.empty()) r.Fail(list[i]["name"], "'" + p + ".name': " + why);
        note(list[i], p, *name);
        hv->set_name(*name);
      }
      if (auto value = r.Str(list[i], "value", p, true)) {
        if (std::string why = CheckHeaderValue(*value); !why.empty()) {
          r.Fail(list[i]["value"], "'" + p + ".value': " + why);
        }
        hv->set_value(*value);
      }
    }
  }
  for (auto& name : r.StrList(n, "remove", path, CheckHeaderName)) {
    note(n["remove"], path + ".remove", name);
    out->add_remove(name);
  }
  if (n["remove"] && n["remove"].IsSequence() && n["remove"].size() > kMaxMatchEntries) {
    r.Fail(n["remove"], "'" + path + ".remove' has more than 16 entries");
  }
  if (out->set_size() + out->add_size() + out->remove_size() == 0) r.Fail(n, "'" + path + "' changes no header");
}

void DecodeUrlRewrite(YamlReader& r, const YAML::Node& n, const std::string& path, v1::UrlRewrite* out) {
  if (!r.CheckMap(n, path, {"hostname", "path"})) return;
  if (auto h = r.Str(n, "hostname", path, false)) {
    if (std::string why = CheckName(*h); !why.empty()) r.Fail(n["hostname"], "'" + path + ".hostname': " + why);
    out->set_hostname(*h);
  }
  YAML::Node p = n["path"];
  std::string pp = path + ".path";
  if (p && !p.IsNull() && r.CheckMap(p, pp, {"type", "replaceFullPath", "replacePrefixMatch"})) {
    auto type = r.Str(p, "type", pp, true);
    const char* field = nullptr;
    if (type && *type == "ReplaceFullPath") {
      out->set_path_type(v1::UrlRewrite::REPLACE_FULL_PATH);
      field = "replaceFullPath";
    } else if (type && *type == "ReplacePrefixMatch") {
      out->set_path_type(v1::UrlRewrite::REPLACE_PREFIX_MATCH);
      field = "replacePrefixMatch";
    } else if (type) {
      r.Fail(p["type"], "'" + pp + ".type' must be ReplaceFullPath or ReplacePrefixMatch, not '" + *type + "'");
    }
    if (field != nullptr) {
      const char* other = std::string(field) == "replaceFullPath" ? "replacePrefixMatch" : "replaceFullPath";
      if (p[other]) r.Fail(p[other], "'" + pp + "." + other + "' does not go with type " + *type);
      if (auto v = r.Str(p, field, pp, true)) {
        if (std::string why = CheckPath(*v); !why.empty()) r.Fail(p[field], "'" + pp + "." + field + "': " + why);
        out->set_path(*v);
      }
    }
  }
  if (out->hostname().empty() && out->path_type() == v1::UrlRewrite::PATH_UNCHANGED) {
    r.Fail(n, "'" + path + "' rewrites nothing (give a hostname, a path or both)");
  }
}

void DecodeMirror(YamlReader& r, const YAML::Node& n, const std::string& path, const std::string& ns,
                  v1::RequestMirror* out) {
  if (!r.CheckMap(n, path, {"backendRef", "percent"})) return;
  YAML::Node b = n["backendRef"];
  if (!b || b.IsNull()) {
    r.Fail(n, "missing required field '" + path + ".backendRef'");
  } else {
    DecodeBackendRef(r, b, path + ".backendRef", ns, {"group", "kind", "name", "namespace", "port"},
                     out->mutable_backend());
  }
  out->set_percent(static_cast<uint32_t>(r.Int(n, "percent", path, 0, 100).value_or(100)));
}

// rules[].filters. `http`: HTTPRoute (URLRewrite allowed); GRPCRoute has no rewrite.
void DecodeFilters(YamlReader& r, const YAML::Node& list, const std::string& path, const std::string& ns, bool http,
                   google::protobuf::RepeatedPtrField<v1::HttpRouteFilter>* out) {
  if (!List(r, list, path, kMaxMatchEntries)) return;
  std::set<std::string> once;  // Gateway API: each of these at most once per rule
  for (size_t i = 0; i < list.size(); ++i) {
    std::string p = Idx(path, i);
    YAML::Node f = list[i];
    if (!r.CheckMap(f, p, {"type", "requestHeaderModifier", "responseHeaderModifier", "urlRewrite", "requestMirror"})) {
      continue;
    }
    auto type = r.Str(f, "type", p, true);
    if (!type) continue;
    const std::string supported = http ? "RequestHeaderModifier, ResponseHeaderModifier, URLRewrite or RequestMirror"
                                       : "RequestHeaderModifier, ResponseHeaderModifier or RequestMirror";
    const char* field = *type == "RequestHeaderModifier"    ? "requestHeaderModifier"
                        : *type == "ResponseHeaderModifier" ? "responseHeaderModifier"
                        : *type == "URLRewrite" && http     ? "urlRewrite"
                        : *type == "RequestMirror"          ? "requestMirror"
                                                            : nullptr;
    if (field == nullptr) {
      r.Fail(f["type"], "'" + p + ".type': '" + *type + "' is not supported (" + supported + ")");
      continue;
    }
    for (const char* k : {"requestHeaderModifier", "responseHeaderModifier", "urlRewrite", "requestMirror"}) {
      if (std::string(k) != field && f[k]) r.Fail(f[k], "'" + p + "." + k + "' does not go with type " + *type);
    }
    if (*type != "RequestMirror" && !once.insert(*type).second) {
      r.Fail(f["type"], "'" + p + "': a rule may have one " + *type + " filter");
    }
    std::string fp = p + "." + field;
    if (!f[field] || f[field].IsNull()) {
      r.Fail(f, "missing required field '" + fp + "' (type " + *type + ")");
      continue;
    }
    auto* out_f = out->Add();
    if (*type == "RequestHeaderModifier") {
      DecodeHeaderModifier(r, f[field], fp, out_f->mutable_request_header_modifier());
    } else if (*type == "ResponseHeaderModifier") {
      DecodeHeaderModifier(r, f[field], fp, out_f->mutable_response_header_modifier());
    } else if (*type == "URLRewrite") {
      DecodeUrlRewrite(r, f[field], fp, out_f->mutable_url_rewrite());
    } else {
      DecodeMirror(r, f[field], fp, ns, out_f->mutable_request_mirror());
    }
  }
}

// Gateway API durations ("10s", "500ms", "1m"); "0s" disables the timeout (0 in the resource).
std::optional<uint32_t> TimeoutMs(YamlReader& r, const YAML::Node& map, const char* key, const std::string& path) {
  auto s = r.Str(map, key, path, false);
  if (!s) return std::nullopt;
  if (auto ms = ParseDurationMs(*s); ms && *ms == 0) return 0;
  return DurationMs(r, map, key, path);
}

void DecodeRetry(YamlReader& r, const YAML::Node& n, const std::string& path, v1::HttpRetry* out) {
  if (!r.CheckMap(n, path, {"attempts", "codes", "backoff"})) return;
  out->set_attempts(static_cast<uint32_t>(r.Int(n, "attempts", path, 0, kMaxRetryAttempts).value_or(1)));
  if (YAML::Node codes = n["codes"]; List(r, codes, path + ".codes", 32)) {
    std::set<int64_t> seen;
    for (size_t i = 0; i < codes.size(); ++i) {
      auto c = r.IntNode(codes[i], Idx(path + ".codes", i), 400, 599);
      if (c && !seen.insert(*c).second) r.Fail(codes[i], "'" + Idx(path + ".codes", i) + "': code listed twice");
      if (c) out->add_codes(static_cast<uint32_t>(*c));
    }
  }
  out->set_backoff_ms(DurationMs(r, n, "backoff", path).value_or(0));
}

void DecodeHostnames(YamlReader& r, const YAML::Node& spec, google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!List(r, spec["hostnames"], "spec.hostnames", kMaxMatchEntries)) return;
  for (auto& h : r.StrList(spec, "hostnames", "spec", CheckHostname)) *out->Add() = h;
}

// spec.rules: a non-empty list of at most 16; `decode` fills one rule.
template <typename Decode>
void DecodeRules(YamlReader& r, const YAML::Node& spec, Decode decode) {
  YAML::Node rules = spec["rules"];
  if (!rules || rules.IsNull()) {
    r.Fail(spec, "missing required field 'spec.rules'");
  } else if (!rules.IsSequence() || rules.size() == 0) {
    r.Fail(rules, "'spec.rules' must be a non-empty list");
  } else if (List(r, rules, "spec.rules", kMaxRouteRules)) {
    std::set<std::string> names;
    for (size_t i = 0; i < rules.size(); ++i) {
      std::string p = Idx("spec.rules", i);
      if (auto n = rules[i].IsMap() ? r.Str(rules[i], "name", p, false) : std::nullopt) {
        if (std::string why = CheckName(*n); !why.empty()) r.Fail(rules[i]["name"], "'" + p + ".name': " + why);
        if (!names.insert(*n).second) r.Fail(rules[i]["name"], "'" + p + ".name': '" + *n + "' names two rules");
      }
      decode(rules[i], p);
    }
  }
}

}  // namespace

void DecodeHttpRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                     v1::HttpRoute* out) {
  out->set_name(name);
  out->set_namespace_(ns);
  if (!r.CheckMap(spec, "spec", {"parentRefs", "hostnames", "rules"})) return;
  DecodeParentRefs(r, spec, ns, out->mutable_parent_refs());
  DecodeHostnames(r, spec, out->mutable_hostnames());
  DecodeRules(r, spec, [&](const YAML::Node& rule, const std::string& p) {
    if (!r.CheckMap(rule, p, {"name", "matches", "filters", "backendRefs", "timeouts", "retry"})) return;
    auto* out_rule = out->add_rules();
    if (rule["name"] && rule["name"].IsScalar()) out_rule->set_name(rule["name"].Scalar());  // checked by DecodeRules
    if (YAML::Node ms = rule["matches"]; List(r, ms, p + ".matches", kMaxRouteMatches)) {
      for (size_t i = 0; i < ms.size(); ++i) DecodeHttpMatch(r, ms[i], Idx(p + ".matches", i), out_rule->add_matches());
    }
    DecodeFilters(r, rule["filters"], p + ".filters", ns, true, out_rule->mutable_filters());
    for (const auto& f : out_rule->filters()) {
      if (!f.has_url_rewrite() || f.url_rewrite().path_type() != v1::UrlRewrite::REPLACE_PREFIX_MATCH) continue;
      // The prefix to replace is the one the request matched: every match must be a PathPrefix.
      bool prefixed = out_rule->matches_size() > 0;
      for (const auto& m : out_rule->matches()) prefixed = prefixed && m.path().type() == v1::MATCH_PREFIX;
      if (!prefixed) {
        r.Fail(rule["filters"], "'" + p +
                                    "': URLRewrite ReplacePrefixMatch needs every match of the rule to have "
                                    "a PathPrefix path");
      }
    }
    DecodeBackendRefs(r, rule, p, ns, out_rule->mutable_backend_refs());
    if (YAML::Node t = rule["timeouts"];
        t && !t.IsNull() && r.CheckMap(t, p + ".timeouts", {"request", "backendRequest"})) {
      out_rule->set_request_timeout_ms(TimeoutMs(r, t, "request", p + ".timeouts").value_or(0));
      out_rule->set_backend_request_timeout_ms(TimeoutMs(r, t, "backendRequest", p + ".timeouts").value_or(0));
      if (out_rule->request_timeout_ms() != 0 &&
          out_rule->backend_request_timeout_ms() > out_rule->request_timeout_ms()) {
        r.Fail(t, "'" + p + ".timeouts.backendRequest' must not exceed 'request'");
      }
    }
    if (YAML::Node rt = rule["retry"]; rt && !rt.IsNull()) DecodeRetry(r, rt, p + ".retry", out_rule->mutable_retry());
  });
}

void DecodeGrpcRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                     v1::GrpcRoute* out) {
  out->set_name(name);
  out->set_namespace_(ns);
  if (!r.CheckMap(spec, "spec", {"parentRefs", "hostnames", "rules"})) return;
  DecodeParentRefs(r, spec, ns, out->mutable_parent_refs());
  DecodeHostnames(r, spec, out->mutable_hostnames());
  DecodeRules(r, spec, [&](const YAML::Node& rule, const std::string& p) {
    if (!r.CheckMap(rule, p, {"name", "matches", "filters", "backendRefs"})) return;
    auto* out_rule = out->add_rules();
    if (rule["name"] && rule["name"].IsScalar()) out_rule->set_name(rule["name"].Scalar());  // checked by DecodeRules
    if (YAML::Node ms = rule["matches"]; List(r, ms, p + ".matches", kMaxRouteMatches)) {
      for (size_t i = 0; i < ms.size(); ++i) DecodeGrpcMatch(r, ms[i], Idx(p + ".matches", i), out_rule->add_matches());
    }
    DecodeFilters(r, rule["filters"], p + ".filters", ns, false, out_rule->mutable_filters());
    DecodeBackendRefs(r, rule, p, ns, out_rule->mutable_backend_refs());
  });
}

}  // namespace zm::manifest
