#include "controller/manifest/permission_http_decode.h"

#include <cctype>
#include <set>
#include <string_view>

#include "controller/manifest/traffic_decode.h"

namespace zm::manifest {
namespace v1 = zeromesh::v1;
namespace {

constexpr size_t kMaxPathLength = 1024;
constexpr size_t kMaxHeaderValueLength = 4096;

bool TokenChar(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// A list of at most |max| scalars (each checked), or an error. Absent or null: nothing.
void ScalarList(YamlReader& r, const YAML::Node& map, const char* key, const std::string& path, size_t max,
                std::string (*check)(const std::string&), google::protobuf::RepeatedPtrField<std::string>* out) {
  YAML::Node n = map[key];
  if (!n || n.IsNull()) return;
  std::string lp = path + "." + key;
  if (!n.IsSequence()) {
    r.Fail(n, "'" + lp + "' must be a list");
    return;
  }
  if (n.size() > max) {
    r.Fail(n, "'" + lp + "' has " + std::to_string(n.size()) + " entries; at most " + std::to_string(max) +
                  " are allowed");
    return;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string ip = Idx(lp, i);
    if (!n[i].IsScalar()) {
      r.Fail(n[i], "'" + ip + "' must be a string");
      continue;
    }
    const std::string& v = n[i].Scalar();
    if (std::string why = check(v); !why.empty()) {
      r.Fail(n[i], "'" + ip + "': " + why);
      continue;
    }
    if (!seen.insert(v).second) r.Fail(n[i], "'" + ip + "': '" + v + "' is listed twice");
    out->Add()->assign(v);
  }
}

std::string CheckHeaderName(const std::string& s) {
  if (s.empty() || s.size() > 256) return "must be 1 to 256 characters";
  for (unsigned char c : s) {
    if (!TokenChar(c)) return "'" + s + "' is not an HTTP header name";
  }
  return "";
}

std::string CheckHeaderValue(const std::string& s) {
  if (s.size() > kMaxHeaderValueLength) return "must be at most 4096 characters";
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c >= 0x7f) return "must be printable ASCII (no control characters)";
  }
  return "";
}

// {name, value | prefix | present: true}: exactly one way to match.
void DecodeHeaders(YamlReader& r, const YAML::Node& entry, const std::string& path,
                   google::protobuf::RepeatedPtrField<v1::StringMatch>* out) {
  YAML::Node list = entry["headers"];
  if (!list || list.IsNull()) return;
  std::string lp = path + ".headers";
  if (!list.IsSequence()) {
    r.Fail(list, "'" + lp + "' must be a list");
    return;
  }
  if (list.size() > kMaxPermissionHttpHeaders) {
    r.Fail(list, "'" + lp + "' has " + std::to_string(list.size()) + " entries; at most " +
                     std::to_string(kMaxPermissionHttpHeaders) + " are allowed");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    std::string p = Idx(lp, i);
    YAML::Node h = list[i];
    if (!r.CheckMap(h, p, {"name", "value", "prefix", "present"})) continue;
    auto* sm = out->Add();
    if (auto n = r.Str(h, "name", p, true)) {
      if (std::string why = CheckHeaderName(*n); !why.empty()) r.Fail(h["name"], "'" + p + ".name': " + why);
      std::string lower = *n;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      sm->set_name(lower);  // HTTP/1.1 header names are case-insensitive; the proxy compares lower case
    }
    int ways = (h["value"] ? 1 : 0) + (h["prefix"] ? 1 : 0) + (h["present"] ? 1 : 0);
    if (ways != 1) {
      r.Fail(h, "'" + p + "' needs exactly one of value (exact), prefix or present: true");
      continue;
    }
    if (h["present"]) {
      auto present = r.Bool(h, "present", p);
      if (present && !*present) {
        r.Fail(h["present"], "'" + p + ".present' can only be true (to require a header's absence, use a DENY)");
      }
      sm->set_type(v1::MATCH_PREFIX);  // every value starts with ""
      continue;
    }
    const char* key = h["value"] ? "value" : "prefix";
    if (auto v = r.Str(h, key, p, true)) {
      if (std::string why = CheckHeaderValue(*v); !why.empty()) r.Fail(h[key], "'" + p + "." + key + "': " + why);
      if (h["prefix"] && v->empty()) r.Fail(h[key], "'" + p + ".prefix' is empty: use present: true");
      sm->set_type(h["value"] ? v1::MATCH_EXACT : v1::MATCH_PREFIX);
      sm->set_value(*v);
    }
  }
}

}  // namespace

std::string CheckPermissionMethod(const std::string& m) {
  if (m.empty()) return "a method must not be empty";
  if (m.size() > 32) return "'" + m + "' is longer than 32 characters";
  for (unsigned char c : m) {
    if (!TokenChar(c)) return "'" + m + "' is not an HTTP method";
    if (std::islower(c)) return "'" + m + "' is not an HTTP method: methods are case-sensitive, write it upper case";
  }
  return "";
}

std::string CheckPermissionPath(const std::string& p) {
  if (p.empty()) return "a path must not be empty (leave paths out to match every path, or use \"*\")";
  if (p.size() > kMaxPathLength) return "must be at most 1024 characters";
  for (unsigned char c : p) {
    if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#') {
      return "'" + p + "' must be printable ASCII without spaces, '?' or '#' (the query is not matched)";
    }
  }
  if (p == "*") return "";
  size_t stars = 0;
  for (char c : p) stars += c == '*' ? 1 : 0;
  if (stars > 1 || (stars == 1 && p.front() != '*' && p.back() != '*')) {
    return "'" + p + "': '*' may only stand at the start (suffix match) or the end (prefix match)";
  }
  if (p.front() != '/' && p.front() != '*') return "'" + p + "' must start with '/' (or '*' for a suffix match)";
  return "";
}

void DecodePermissionHttp(YamlReader& r, const YAML::Node& spec, v1::TrafficPermission* p) {
  YAML::Node list = spec["http"];
  if (!list || list.IsNull()) return;
  if (!list.IsSequence() || list.size() == 0) {
    r.Fail(list, "'spec.http' must be a non-empty list of request matches (leave it out for an L4-only permission)");
    return;
  }
  if (list.size() > kMaxPermissionHttpEntries) {
    r.Fail(list, "'spec.http' has " + std::to_string(list.size()) + " entries; at most " +
                     std::to_string(kMaxPermissionHttpEntries) + " are allowed");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    std::string path = Idx("spec.http", i);
    YAML::Node e = list[i];
    if (!r.CheckMap(e, path, {"methods", "paths", "headers"})) continue;
    size_t errors_before = r.error_count();
    auto* m = p->add_http();
    ScalarList(r, e, "methods", path, kMaxPermissionHttpValues, CheckPermissionMethod, m->mutable_methods());
    ScalarList(r, e, "paths", path, kMaxPermissionHttpValues, CheckPermissionPath, m->mutable_paths());
    DecodeHeaders(r, e, path, m->mutable_headers());
    if (m->methods_size() + m->paths_size() + m->headers_size() == 0 && r.error_count() == errors_before) {
      r.Fail(e, "'" + path +
                    "' names no methods, paths or headers: it would match every request (leave spec.http "
                    "out for that)");
    }
  }
}

}  // namespace zm::manifest
