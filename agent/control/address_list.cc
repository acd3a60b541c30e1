#include "agent/control/address_list.h"

#include <algorithm>

namespace zm::agent::control {
namespace {

// |first| then |all| (which may repeat it); "" entries are errors except an empty |first|.
bool Collect(const std::string& first, const google::protobuf::RepeatedPtrField<std::string>& all,
             std::vector<net::IpAddr>* out, std::string* error) {
  std::vector<net::IpAddr> ips;
  auto add = [&](const std::string& text) {
    std::optional<net::IpAddr> ip = net::IpAddr::Parse(text);
    if (!ip) {
      *error = "bad IP '" + text + "'";
      return false;
    }
    if (std::find(ips.begin(), ips.end(), *ip) == ips.end()) ips.push_back(*ip);
    return true;
  };
  if (!first.empty() && !add(first)) return false;
  for (const auto& text : all) {
    if (!add(text)) return false;
  }
  *out = std::move(ips);
  return true;
}

}  // namespace

bool WorkloadIps(const zeromesh::v1::Workload& w, std::vector<net::IpAddr>* out, std::string* error) {
  if (w.ip().empty() && w.ips().empty()) {
    *error = "bad IP ''";
    return false;
  }
  return Collect(w.ip(), w.ips(), out, error);
}

bool ServiceVips(const zeromesh::v1::Service& s, std::vector<net::IpAddr>* out, std::string* error) {
  return Collect(s.vip(), s.vips(), out, error);
}

}  // namespace zm::agent::control
