// Field-level helpers for decoding YAML with precise errors (file:line, field path) and no exceptions escaping.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/manifest/manifest.h"

namespace zm::manifest {

class YamlReader {
 public:
  YamlReader(std::string file, std::vector<Error>* errors) : file_(std::move(file)), errors_(errors) {}

  void Fail(const YAML::Node& at, const std::string& reason);
  size_t error_count() const { return errors_->size(); }

  // `node` must be a map whose keys are all in `allowed` (and not repeated).
  bool CheckMap(const YAML::Node& node, const std::string& path, std::initializer_list<std::string_view> allowed);

  // Getters: nullopt when absent (a "required" field that is absent is reported) or malformed (reported).
  std::optional<std::string> Str(const YAML::Node& map, const char* key, const std::string& path, bool required);
  std::optional<bool> Bool(const YAML::Node& map, const char* key, const std::string& path);
  std::optional<int64_t> Int(const YAML::Node& map, const char* key, const std::string& path, int64_t lo, int64_t hi);
  std::optional<int64_t> IntNode(const YAML::Node& v, const std::string& path, int64_t lo, int64_t hi);
  // A list of scalars; each element goes through `check` (returns an error reason or "").
  std::vector<std::string> StrList(const YAML::Node& map, const char* key, const std::string& path,
                                   std::string (*check)(const std::string&));
  // map<string,string> with label-key/value validation.
  std::map<std::string, std::string> Labels(const YAML::Node& map, const char* key, const std::string& path);

  static int Line(const YAML::Node& n) { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }

 private:
  std::string file_;
  std::vector<Error>* errors_;
};

// Field value checks: "" when fine, else the reason.
// An IPv4 or IPv6 address (common/net/ip_addr.h), without brackets, zone or port; IPv4-mapped IPv6 is refused (write
// the IPv4 address).
std::string CheckIp(const std::string& s);
// An IPv4 or IPv6 network "address/len" with no host bits set.
std::string CheckCidr(const std::string& s);
// The canonical text of a valid address or CIDR (RFC 5952 for IPv6: "fd00::1", not "FD00:0::0001"), so that one
// address is one string wherever the controller and the agents compare them; other text unchanged.
std::string CanonicalIp(const std::string& s);
std::string CanonicalCidr(const std::string& s);
// Names, namespaces and service accounts follow common/tls/spiffe.h: what decodes here can become a SPIFFE ID.
std::string CheckName(const std::string& s);       // DNS-1123 subdomain
std::string CheckNamespace(const std::string& s);  // DNS-1123 label
std::string CheckServiceAccount(const std::string& s);
std::string CheckSpiffe(const std::string& s);
// How to write |text|, an unquoted value ending in ':' (an IPv6 address like fd00::), that YAML read as a mapping key
// (a ':' before a space, ',', ']' or the line's end starts a value): quote it. For errors; "" if |text| does not end
// in "::" (not an address then, and not this mistake).
std::string UnquotedColonsHint(const std::string& text);
// "24h", "90m", "3600s", "1h30m" or a bare number of seconds; nullopt if malformed.
std::optional<int64_t> ParseDuration(const std::string& s);

}  // namespace zm::manifest
