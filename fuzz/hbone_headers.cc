// The CONNECT headers an HBONE peer controls: `forwarded` and `:authority` (agent/proxy/forwarded.h, authority.h).
// Besides "no crash, no leak, no UB", it checks what the parsers promise: a parsed forwarded list is non-empty and
// bounded, and a parsed authority has a port in 1-65535.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agent/proxy/authority.h"
#include "agent/proxy/forwarded.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<zm::proxy::ForwardedNode> fors;
  std::string error;
  if (zm::proxy::ParseForwarded(in, &fors, &error)) {
    if (fors.empty() || fors.size() > zm::proxy::kMaxForwardedElements) std::abort();
  } else if (error.empty()) {
    std::abort();  // a refusal always says why
  }
  zm::proxy::ForwardedNode node;
  error.clear();
  if (!zm::proxy::ParseForwardedNode(in, &node, &error) && error.empty()) std::abort();
  // An accepted authority has a port and an address, and prints back as it was read (one canonical form aside).
  zm::net::SockAddr addr{};
  if (zm::proxy::ParseAuthority(in, &addr)) {
    if (addr.port == 0 || addr.ip.empty()) std::abort();
    zm::net::SockAddr again{};
    if (!zm::proxy::ParseAuthority(addr.ToString(), &again) || !(again == addr)) std::abort();
  }
  return 0;
}
