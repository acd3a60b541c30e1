// The reasons CheckSet gives for a set's duplicates, in one place: the plain check (load.cc) and the decode cache's
// kept indexes (set_index.cc) must word them alike, as their property test compares the two error for error.
// |first| is where the earlier definition is ("file:line").
#pragma once

#include <string>

namespace zm::manifest {

inline std::string DuplicateNameReason(const std::string& key, const std::string& first) {
  return "duplicate name: " + key + " is already defined at " + first;
}
inline std::string DuplicateIpReason(const std::string& ip, const std::string& first) {
  return "duplicate workload IP " + ip + " (also used at " + first + ")";
}
inline std::string DuplicateVipReason(const std::string& vip, const std::string& first) {
  return "duplicate service VIP " + vip + " (also used at " + first + ")";
}
inline std::string SecondMeshConfigReason(const std::string& other) {
  return "only one MeshConfig is allowed (another at " + other + ")";
}

}  // namespace zm::manifest
