/* Contract between bpf/capture.bpf.c and the agent's BPF manager (agent/bpf/): map names, key/value layouts and
 * constants. Plain C so that both the BPF program (with vmlinux.h) and C++ can include it. Changing a layout makes
 * pinned maps of an older agent incompatible: the manager then refuses to load (see BpfManager::Init). */
#ifndef ZEROMESH_BPF_CAPTURE_ABI_H_
#define ZEROMESH_BPF_CAPTURE_ABI_H_

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* zm_ifaces: ifindex (u32) -> role (u32). */
#define ZM_ROLE_POD_VETH 1
#define ZM_ROLE_UPLINK 2

/* zm_pods: IPv4 address in network byte order (u32) -> struct zm_pod. */
#define ZM_POD_ENROLLED 1     /* local pod whose traffic is captured */
#define ZM_POD_NOT_ENROLLED 2 /* local pod known to the agent, not in the mesh */
#define ZM_MODE_STRICT 1      /* no listener -> drop (fail closed); plaintext inbound rejected */
#define ZM_MODE_PERMISSIVE 2  /* no listener -> pass (fail open) */

struct zm_pod {
  __u8 state;
  __u8 mode;
};

/* zm_listeners (SOCKMAP, u32 -> u64 socket fd/cookie): slots. */
#define ZM_SLOT_OUTBOUND 0  /* proxy port 15001 */
#define ZM_SLOT_HBONE 1     /* proxy port 15008 */
#define ZM_SLOT_PLAINTEXT 2 /* proxy port 15006 */
#define ZM_SLOT_COUNT 3

#define ZM_HBONE_PORT 15008

/* zm_excl_ports: destination port (u16, host byte order) -> u8 ZM_EXCL_OUTBOUND. */
#define ZM_EXCL_OUTBOUND 1

/* zm_excl_cidrs: LPM trie keyed by struct zm_lpm_v4 -> u8 (1). */
struct zm_lpm_v4 {
  __u32 prefixlen;
  __u32 addr; /* network byte order */
};

/* zm_cfg: array[1] of struct zm_cfg. */
#define ZM_CFG_CAPTURE_UNKNOWN (1u << 0)
#define ZM_CFG_STRICT_UDP_ALLOW (1u << 1) /* STRICT pods may send any UDP (default: DNS, port 53, only) */
struct zm_cfg {
  __u32 flags;
};

/* zm_stats: per-CPU array of u64 counters. */
#define ZM_STAT_CAPTURED_OUTBOUND 0
#define ZM_STAT_CAPTURED_HBONE 1
#define ZM_STAT_CAPTURED_PLAINTEXT 2
#define ZM_STAT_ASSIGNED_ESTABLISHED 3
#define ZM_STAT_DROPPED_FAIL_CLOSED 4
#define ZM_STAT_ASSIGN_ERRORS 5
#define ZM_STAT_PASSED_FAIL_OPEN 6
#define ZM_STAT_DROPPED_ORPHAN 7 /* non-SYN of a STRICT pod with no owning socket */
#define ZM_STAT_COUNT 8

/* zm_guard_stats: per-CPU array of u64 counters of what STRICT's guards dropped or let through. A map of its own
 * (not more zm_stats slots) so that the pinned zm_stats of an older agent stays compatible across an upgrade. */
#define ZM_GUARD_NODE_PLAINTEXT                                                                                    \
  0                             /* SYN from the node's own netns (or uncaptured) to a STRICT pod, not a probe port \
                                 */
#define ZM_GUARD_PROBE_PASSED 1 /* SYN from the node's own netns to a STRICT pod's declared probe port */
#define ZM_GUARD_FRAGMENT 2     /* TCP fragment from or to a STRICT pod */
#define ZM_GUARD_IPV6                                                                                              \
  3                       /* IPv6 of a STRICT pod not meshed: extension headers or fragments, or TCP / non-DNS UDP \
                           * from or to a pod address the agent does not know (zm_veth_pods[6]) */
#define ZM_GUARD_UDP 4    /* UDP of a STRICT pod to a port other than 53 */
#define ZM_GUARD_COUNT 16 /* room for more reasons without changing the pinned map */

/* zm_probe_ports: struct zm_probe_key -> u8 (1). The kubelet's probe ports of local STRICT pods. */
struct zm_probe_key {
  __u32 addr; /* pod IPv4, network byte order */
  __u16 port; /* host byte order */
  __u16 pad;  /* zero */
};

/* zm_veth_pods: pod veth ifindex (u32) -> the IPv4 (network order) of the pod behind it, so that the pod's IPv6
 * packets (which name no IPv4) find its mode. Written by the agent from the node's routes, and learned by the program
 * from the pod's own IPv4 packets (bridge CNIs, where the route names the bridge). */

/* IPv6 (dual-stack and IPv6-only pods). Maps of their own beside the IPv4 ones, so that the pinned maps of an older
 * agent keep their layouts across an upgrade; the counters (zm_stats, zm_guard_stats) are shared by both families.
 * Only IPv6 packets whose TCP or UDP header follows the fixed header are meshed: extension headers and fragments from
 * or to a STRICT pod are dropped (ZM_GUARD_IPV6).
 *   zm_pods6: struct zm_addr6 -> struct zm_pod (the pod's IPv6 addresses, same states and modes as zm_pods).
 *   zm_listeners6: SOCKMAP, the same three slots, holding the proxy's AF_INET6 listeners (IPV6_V6ONLY,
 *     IPV6_TRANSPARENT): an AF_INET listener cannot take an IPv6 SYN.
 *   zm_excl_cidrs6: LPM trie keyed by struct zm_lpm_v6 -> u8 (1). zm_excl_ports applies to both families.
 *   zm_probe_ports6: struct zm_probe_key6 -> u8 (1).
 *   zm_veth_pods6: pod veth ifindex (u32) -> struct zm_addr6, the IPv6 twin of zm_veth_pods (IPv6-only pods have no
 *     IPv4 to look up): written by the agent from the node's IPv6 host routes and learned from the pod's own IPv6. */
struct zm_addr6 {
  __u32 addr[4]; /* network byte order, as in the IPv6 header */
};

struct zm_lpm_v6 {
  __u32 prefixlen;
  __u8 addr[16];
};

struct zm_probe_key6 {
  __u32 addr[4]; /* pod IPv6, network byte order */
  __u16 port;    /* host byte order */
  __u16 pad;     /* zero */
};

/* Mark set on every assigned packet; the node netns routes it locally (rule fwmark 0x200/0xf00 lookup 100). */
#define ZM_MARK_VALUE 0x200
#define ZM_MARK_MASK 0xf00
/* SO_MARK of the proxy's own sockets (listeners and what they accept, upstream and HBONE sockets): their packets skip
 * conntrack too (agent/bpf/conntrack_bypass.h). Routed normally: only ZM_MARK_VALUE selects the local table. */
#define ZM_MARK_PROXY 0x300

/* Size limits of the hash maps. */
#define ZM_MAX_IFACES 4096
#define ZM_MAX_PODS 16384
#define ZM_MAX_EXCL_PORTS 256
#define ZM_MAX_EXCL_CIDRS 256
#define ZM_MAX_PROBE_PORTS 65536

#endif /* ZEROMESH_BPF_CAPTURE_ABI_H_ */
