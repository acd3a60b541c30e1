// Steered packets skip conntrack, so kube-proxy (or any NAT on the node) never rewrites them. The capture program
// assigns a pod's SYN to the proxy's listener and marks it (ZM_MARK_VALUE); without this, kube-proxy's PREROUTING
// DNAT then turns "client -> Service VIP" into "client -> some endpoint" before local delivery, the proxy's socket
// is hashed under the endpoint's address, and the client's next segments (still to the VIP) find no socket: the
// handshake never completes. The proxy resolves VIPs itself, so it needs the original destination anyway.
//
// The proxy's own packets skip it as well (they carry ZM_MARK_PROXY, its sockets' SO_MARK): a pod's direct flows
// (before it was enrolled, or while PERMISSIVE) leave DNAT entries for up to 2 minutes (TIME_WAIT), and a proxy flow
// that reuses such a 4-tuple (the client's port towards the VIP, or an upstream port towards the endpoint) clashed
// with them: conntrack dropped its packets, the connection stalled or timed out.
//
// One nftables table of our own (family inet, "zeromesh") with two raw-priority chains:
//   prerouting: meta mark & 0xf00 == 0x200 notrack
//   output:     meta mark & 0xf00 == 0x300 notrack
// Built with libnftnl over an nfnetlink socket in the calling thread's netns; it coexists with iptables-legacy,
// iptables-nft and other nftables tables. Needs CAP_NET_ADMIN.
#pragma once

#include <cstdint>

#include "agent/bpf/status.h"
#include "bpf/capture_abi.h"

namespace zm::agent::bpf {

class ConntrackBypass {
 public:
  static constexpr const char* kTable = "zeromesh";
  // Replaces our table with a fresh one holding the rule (atomically: one nftables transaction).
  static Status Ensure(uint32_t mark = ZM_MARK_VALUE, uint32_t proxy_mark = ZM_MARK_PROXY,
                       uint32_t mask = ZM_MARK_MASK);
  // Deletes our table (uninstall); absent is fine.
  static Status Remove();
};

}  // namespace zm::agent::bpf
