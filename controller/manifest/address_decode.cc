#include "controller/manifest/address_decode.h"

#include <algorithm>

#include "common/net/ip_addr.h"

namespace zm::manifest {

Addresses DecodeAddresses(YamlReader& r, const YAML::Node& spec, const char* one, const char* many, bool required) {
  Addresses out;
  const std::string one_path = std::string("spec.") + one, many_path = std::string("spec.") + many;
  YAML::Node list_node = spec[many];
  const bool has_list = list_node && !list_node.IsNull();
  if (auto ip = r.Str(spec, one, "spec", required && !has_list)) {
    if (std::string why = CheckIp(*ip); !why.empty()) {
      r.Fail(spec[one], "'" + one_path + "': " + why);
    } else {
      out.primary = CanonicalIp(*ip);
    }
  }
  if (!has_list) return out;
  size_t errors_before = r.error_count();
  std::vector<std::string> list = r.StrList(spec, many, "spec", CheckIp);
  if (list_node.IsSequence() && list_node.size() == 0) r.Fail(list_node, "'" + many_path + "' must not be empty");
  if (r.error_count() != errors_before) return out;
  // One address per family: the Kubernetes rule for podIPs and clusterIPs (a dual-stack pod has one of each).
  std::string seen[2];
  for (size_t i = 0; i < list.size(); i++) {
    list[i] = CanonicalIp(list[i]);
    const bool v6 = net::IpAddr::Parse(list[i])->is_v6();
    std::string& prev = seen[v6 ? 1 : 0];
    if (!prev.empty()) {
      r.Fail(list_node[i], "'" + many_path + "[" + std::to_string(i) + "]': " + list[i] + " is a second " +
                               (v6 ? "IPv6" : "IPv4") + " address (after " + prev +
                               "): at most one address per family");
      return out;
    }
    prev = list[i];
  }
  if (out.primary.empty()) {
    if (spec[one] && !spec[one].IsNull()) return out;  // spec.ip was bad (reported)
    out.primary = list[0];
  } else if (auto it = std::find(list.begin(), list.end(), out.primary); it == list.end()) {
    r.Fail(spec[one], "'" + one_path + "': " + out.primary + " is not among '" + many_path + "' (" + list[0] +
                          (list.size() > 1 ? ", " + list[1] : "") + ")");
    return out;
  } else {
    std::rotate(list.begin(), it, it + 1);  // the primary first
  }
  if (list.size() > 1) out.list = std::move(list);
  return out;
}

}  // namespace zm::manifest
