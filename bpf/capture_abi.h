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

#endif /* ZEROMESH_BPF_CAPTURE_ABI_H_ */
