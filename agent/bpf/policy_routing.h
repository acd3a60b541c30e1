// Node-netns routing for design T: packets the capture program assigned to a local socket carry mark 0x200/0xf00
// and must be delivered locally whatever their destination address:
//   ip rule add fwmark 0x200/0xf00 lookup 100 pref 100 ; ip route replace local 0.0.0.0/0 dev lo table 100
// Done over rtnetlink in the calling thread's netns. Needs CAP_NET_ADMIN and "lo" up.
#pragma once

#include <cstdint>

#include "agent/bpf/status.h"
#include "bpf/capture_abi.h"

namespace zm::agent::bpf {

struct PolicyRoutingConfig {
  uint32_t mark = ZM_MARK_VALUE;
  uint32_t mask = ZM_MARK_MASK;
  uint32_t table = 100;
  uint32_t priority = 100;  // before "main" (32766); "local" (0) still wins for real local addresses
};

class PolicyRouting {
 public:
  // Idempotent: an identical rule is left alone; the table-100 default route is replaced with ours.
  static Status Ensure(const PolicyRoutingConfig& cfg = {});
  // Removes both (uninstall); absent entries are fine.
  static Status Remove(const PolicyRoutingConfig& cfg = {});
};

}  // namespace zm::agent::bpf
