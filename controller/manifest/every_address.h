// Every address of a Workload or Service as the resources carry them: the list (ips / vips, primary first) when
// there is one, else the single field (ip / vip). Empty when a Service has no VIP.
#pragma once

#include <string>
#include <vector>

#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

inline std::vector<std::string> EveryAddress(const std::string& one,
                                             const google::protobuf::RepeatedPtrField<std::string>& many) {
  if (!many.empty()) return {many.begin(), many.end()};
  if (one.empty()) return {};
  return {one};
}

inline std::vector<std::string> EveryIp(const zeromesh::v1::Workload& w) {
  return EveryAddress(w.ip(), w.ips());
}
inline std::vector<std::string> EveryVip(const zeromesh::v1::Service& s) {
  return EveryAddress(s.vip(), s.vips());
}

}  // namespace zm::manifest
