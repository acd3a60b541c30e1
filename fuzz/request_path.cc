// The request-target a client sends an HTTP port whose TrafficPermissions have http rules: NormalizePolicyPath
// (agent/proxy/policy_path.h) decides what path the policy sees and the pod gets. Besides "no crash, no UB", it
// checks the promises authorization relies on: a normalized path starts with '/', holds no dot segment and no escaped
// separator, and normalizing it again changes nothing (what the policy judged is what the pod is sent).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/proxy/policy_path.h"

namespace {

bool HasDotSegment(std::string_view p) {
  for (std::string_view seg : {"/./", "/../"}) {
    if (p.find(seg) != std::string_view::npos) return true;
  }
  return p.ends_with("/.") || p.ends_with("/..");
}

bool HasEscapedSeparator(std::string_view p) {
  for (std::string_view e : {"%2F", "%2f", "%5C", "%5c", "%00"}) {
    if (p.find(e) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view target(reinterpret_cast<const char*>(data), size);
  std::string path, error;
  if (!zm::proxy::NormalizePolicyPath(target, &path, &error)) {
    if (error.empty()) std::abort();  // every refusal says why (the 400's reason)
    return 0;
  }
  if (path.empty() || path == "*") return 0;  // authority-form (CONNECT) or asterisk-form: no path to judge
  if (path.front() != '/' || HasDotSegment(path) || HasEscapedSeparator(path)) std::abort();
  std::string again, again_error;
  if (!zm::proxy::NormalizePolicyPath(path, &again, &again_error) || again != path) std::abort();
  return 0;
}
