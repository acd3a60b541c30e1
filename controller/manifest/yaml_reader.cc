#include "controller/manifest/yaml_reader.h"

#include <set>

#include "common/net/ip_addr.h"
#include "common/tls/spiffe.h"

namespace zm::manifest {

namespace {

// An unquoted list item ending in ':' (fd00::) is a one-entry mapping {"fd00:": null} to YAML. Its hint, else "".
std::string MappingItemHint(const YAML::Node& e) {
  if (!e.IsMap() || e.size() != 1) return "";
  auto kv = *e.begin();
  if (!kv.first.IsScalar() || !kv.second.IsNull()) return "";
  return UnquotedColonsHint(kv.first.Scalar() + ":");
}

}  // namespace

std::string UnquotedColonsHint(const std::string& text) {
  if (text.size() < 2 || text.compare(text.size() - 2, 2, "::") != 0) return "";
  return "YAML read the unquoted " + text + " as a mapping (its last ':' starts a value): quote it ('" + text + "')";
}

void YamlReader::Fail(const YAML::Node& at, const std::string& reason) {
  errors_->push_back(Error{file_, Line(at), reason});
}

bool YamlReader::CheckMap(const YAML::Node& node, const std::string& path,
                          std::initializer_list<std::string_view> allowed) {
  if (!node.IsMap()) {
    Fail(node, path + ": expected a mapping");
    return false;
  }
  bool ok = true;
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      Fail(kv.first, path + ": keys must be strings");
      ok = false;
      continue;
    }
    const std::string& k = kv.first.Scalar();
    bool known = false;
    for (auto a : allowed) known = known || a == k;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      Fail(kv.first, "unknown field '" + path + "." + k + "' (allowed: " + list + ")");
      ok = false;
    } else if (!seen.insert(k).second) {
      Fail(kv.first, "duplicate field '" + path + "." + k + "'");
      ok = false;
    }
  }
  return ok;
}

std::optional<std::string> YamlReader::Str(const YAML::Node& map, const char* key, const std::string& path,
                                           bool required) {
  YAML::Node v = map[key];
  if (!v || v.IsNull()) {
    if (required) Fail(map, "missing required field '" + path + "." + key + "'");
    return std::nullopt;
  }
  if (!v.IsScalar()) {
    Fail(v, "'" + path + "." + key + "' must be a string");
    return std::nullopt;
  }
  return v.Scalar();
}

std::optional<bool> YamlReader::Bool(const YAML::Node& map, const char* key, const std::string& path) {
  YAML::Node v = map[key];
  if (!v || v.IsNull()) return std::nullopt;
  bool out = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, out)) {
    Fail(v, "'" + path + "." + key + "' must be true or false");
    return std::nullopt;
  }
  return out;
}

std::optional<int64_t> YamlReader::IntNode(const YAML::Node& v, const std::string& path, int64_t lo, int64_t hi) {
  if (!v.IsScalar() || v.Scalar().empty()) {
    Fail(v, "'" + path + "' must be an integer");
    return std::nullopt;
  }
  const std::string& s = v.Scalar();
  int64_t out = 0;
  for (char c : s) {
    if (c < '0' || c > '9' || out > (INT64_MAX - 9) / 10) {
      Fail(v, "'" + path + "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      return std::nullopt;
    }
    out = out * 10 + (c - '0');
  }
  if (out < lo || out > hi) {
    Fail(v, "'" + path + "' = " + s + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return std::nullopt;
  }
  return out;
}

std::optional<int64_t> YamlReader::Int(const YAML::Node& map, const char* key, const std::string& path, int64_t lo,
                                       int64_t hi) {
  YAML::Node v = map[key];
  if (!v || v.IsNull()) return std::nullopt;
  return IntNode(v, path + "." + key, lo, hi);
}

std::vector<std::string> YamlReader::StrList(const YAML::Node& map, const char* key, const std::string& path,
                                             std::string (*check)(const std::string&)) {
  std::vector<std::string> out;
  YAML::Node v = map[key];
  if (!v || v.IsNull()) return out;
  std::string p = path + "." + key;
  if (!v.IsSequence()) {
    Fail(v, "'" + p + "' must be a list");
    return out;
  }
  for (size_t i = 0; i < v.size(); i++) {
    YAML::Node e = v[i];
    std::string ep = p + "[" + std::to_string(i) + "]";
    if (!e.IsScalar()) {
      std::string hint = MappingItemHint(e);
      Fail(e, "'" + ep + "' must be a string" + (hint.empty() ? "" : ", but " + hint));
      continue;
    }
    std::string why = check ? check(e.Scalar()) : "";
    if (!why.empty()) {
      Fail(e, "'" + ep + "': " + why);
      continue;
    }
    out.push_back(e.Scalar());
  }
  return out;
}

std::map<std::string, std::string> YamlReader::Labels(const YAML::Node& map, const char* key, const std::string& path) {
  std::map<std::string, std::string> out;
  YAML::Node v = map[key];
  if (!v || v.IsNull()) return out;
  std::string p = path + "." + key;
  if (!v.IsMap()) {
    Fail(v, "'" + p + "' must be a mapping of string to string");
    return out;
  }
  for (const auto& kv : v) {
    if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
      Fail(kv.first, "'" + p + "' must be a mapping of string to string");
      continue;
    }
    const std::string& k = kv.first.Scalar();
    if (k.empty() || k.size() > 316) {
      Fail(kv.first, "'" + p + "': invalid label key '" + k + "'");
      continue;
    }
    if (kv.second.Scalar().size() > 63) {
      Fail(kv.second, "'" + p + "." + k + "': label value longer than 63 characters");
      continue;
    }
    if (!out.emplace(k, kv.second.Scalar()).second) Fail(kv.first, "duplicate label '" + p + "." + k + "'");
  }
  return out;
}

std::string CheckIp(const std::string& s) {
  if (!s.empty() && s.front() == '[') return "'" + s + "' is not an IP address: write an IPv6 address without brackets";
  if (s.find('%') != std::string::npos) return "'" + s + "' is not an IP address: a zone (%...) is not allowed";
  const bool v6_text = s.find(':') != std::string::npos;
  auto ip = net::IpAddr::Parse(s);
  if (!ip) return "'" + s + (v6_text ? "' is not an IPv6 address" : "' is not an IPv4 address");
  if (v6_text && ip->is_v4()) {
    return "'" + s + "' is an IPv4-mapped IPv6 address: write the IPv4 address " + ip->ToString();
  }
  return "";
}

std::string CheckCidr(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos)
    return "'" + s + "' is not a CIDR (expected a.b.c.d/len or an IPv6 prefix such as fd00::/64)";
  std::string addr = s.substr(0, slash), len = s.substr(slash + 1);
  if (std::string why = CheckIp(addr); !why.empty()) return "'" + s + "' is not a CIDR: " + why;
  const unsigned max_len = net::IpAddr::Parse(addr)->is_v4() ? 32 : 128;
  if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(len) > max_len) {
    return "'" + s + "' is not a CIDR: prefix length must be 0.." + std::to_string(max_len);
  }
  auto cidr = net::Cidr::Parse(s);
  if (!cidr) return "'" + s + "' is not a CIDR";  // not reached: address and length were checked above
  if (cidr->net != *net::IpAddr::Parse(addr)) {
    return "'" + s + "' has host bits set (did you mean " + cidr->ToString() + "?)";
  }
  return "";
}

std::string CanonicalIp(const std::string& s) {
  auto ip = net::IpAddr::Parse(s);
  return ip ? ip->ToString() : s;
}

std::string CanonicalCidr(const std::string& s) {
  auto cidr = s.find('/') == std::string::npos ? std::nullopt : net::Cidr::Parse(s);
  return cidr ? cidr->ToString() : s;
}

std::string CheckName(const std::string& s) {
  std::string why;
  return tls::ValidDnsSubdomain(s, "name", &why) ? "" : why;
}

std::string CheckNamespace(const std::string& s) {
  std::string why;
  return tls::ValidNamespace(s, &why) ? "" : why;
}

std::string CheckServiceAccount(const std::string& s) {
  std::string why;
  return tls::ValidServiceAccount(s, &why) ? "" : why;
}

std::string CheckSpiffe(const std::string& s) {
  std::string why;
  tls::SpiffeId id;
  return tls::ParseSpiffeId(s, &id, &why) ? "" : "'" + s + "' is not a SPIFFE ID: " + why;
}

std::optional<int64_t> ParseDuration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    return s.size() > 12 ? std::nullopt : std::optional<int64_t>(std::stoll(s));
  }
  int64_t total = 0, cur = 0;
  bool digits = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      if (cur > 1'000'000'000) return std::nullopt;
      cur = cur * 10 + (c - '0');
      digits = true;
      continue;
    }
    if (!digits) return std::nullopt;
    int64_t unit = c == 'h' ? 3600 : c == 'm' ? 60 : c == 's' ? 1 : 0;
    if (unit == 0) return std::nullopt;
    total += cur * unit;
    cur = 0;
    digits = false;
  }
  if (digits) return std::nullopt;  // trailing number without unit
  return total;
}

}  // namespace zm::manifest
