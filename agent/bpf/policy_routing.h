// Node-netns routing for design T: packets the capture program assigned to a local socket carry mark 0x200/0xf00
// and must be delivered locally whatever their destination address:
//   ip rule add fwmark 0x200/0xf00 lookup 100 pref 100 ; ip route replace local 0.0.0.0/0 dev lo table 100
// and for IPv6 (family AF_INET6) the same with `ip -6` and local ::/0. Done over rtnetlink in the calling thread's
// netns. Needs CAP_NET_ADMIN and "lo" up.
#pragma once

#include <sys/socket.h>

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
  // Idempotent: an identical rule is left alone; the table-100 default route is replaced with ours. family: AF_INET
  // or AF_INET6 (fails on a node without IPv6; the caller decides whether that matters).
  static Status Ensure(const PolicyRoutingConfig& cfg = {}, int family = AF_INET);
  // Removes both (uninstall); absent entries, and IPv6 on a node without it, are fine.
  static Status Remove(const PolicyRoutingConfig& cfg = {}, int family = AF_INET);
};

}  // namespace zm::agent::bpf
