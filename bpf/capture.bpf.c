// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* Design T data path: one tcx ingress program on every pod veth (host side) and on the node uplink.
 * It steers IPv4 and IPv6 TCP into the node proxy with bpf_sk_assign; the node netns routes the marked packets locally
 * (rule fwmark 0x200/0xf00 -> table 100 "local 0.0.0.0/0 dev lo", and "local ::/0 dev lo"). Each family has its own
 * pod, listener, exclusion and probe maps (capture_abi.h). What the proxy cannot mesh is dropped for STRICT pods (TCP
 * fragments, IPv6 extension headers, IPv6 TCP from or to a pod address the agent does not know, UDP other than DNS);
 * everything else continues untouched to the next program of the tcx chain (TCX_NEXT).
 * A second program at tcx egress of every pod veth guards what reaches a STRICT pod without having been captured:
 * the node's own netns (kubelet, hostNetwork pods) may open connections to its declared probe ports only.
 * Layouts and constants are shared with the agent through capture_abi.h; docs/security.md has the threat model. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "capture_abi.h"
#include "pod_maps.h"

/* Verdicts. tcx runs the programs of a hook in order until one returns something other than TCX_NEXT; TCX_PASS and
 * TCX_DROP end the chain. We are one program among others (a CNI's, a firewall's): what we neither steer nor drop
 * continues to the next program (TCX_NEXT, which is also TC_ACT_UNSPEC, "continue" under clsact). Only a packet we
 * steered with bpf_sk_assign ends the chain with TCX_PASS: it is now bound to a proxy socket and marked for local
 * delivery. A later program could undo that: a CNI's Service DNAT or its bpf_redirect to the destination's device
 * (a redirect scrubs the assigned socket) or a rewritten mark would send the SYN on past the proxy, in plaintext for
 * a STRICT pod. The connection's policy is the proxy's; docs/design.md ("tcx chain") says what other programs see. */
#define ZM_NEXT (-1)  /* TCX_NEXT == TC_ACT_UNSPEC: not ours, the next program decides */
#define ZM_STEERED 0  /* TCX_PASS == TC_ACT_OK: assigned to a proxy socket, ends the chain */
#define TC_ACT_SHOT 2 /* TCX_DROP */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPV6_HDR_LEN 40
#define IP_MF 0x2000
#define IP_OFFSET_MASK 0x1fff
#define DNS_PORT 53
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_IFACES);
  __type(key, __u32);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_ifaces SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, ZM_SLOT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_listeners SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_EXCL_PORTS);
  __type(key, __u16);
  __type(value, __u8);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_excl_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, ZM_MAX_EXCL_CIDRS);
  __type(key, struct zm_lpm_v4);
  __type(value, __u8);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_excl_cidrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zm_cfg);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ZM_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_PROBE_PORTS);
  __type(key, struct zm_probe_key);
  __type(value, __u8);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_probe_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_IFACES);
  __type(key, __u32);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_veth_pods SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ZM_GUARD_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_guard_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, ZM_SLOT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_listeners6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, ZM_MAX_EXCL_CIDRS);
  __type(key, struct zm_lpm_v6);
  __type(value, __u8);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_excl_cidrs6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_IFACES);
  __type(key, __u32);
  __type(value, struct zm_addr6);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_veth_pods6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_PROBE_PORTS);
  __type(key, struct zm_probe_key6);
  __type(value, __u8);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_probe_ports6 SEC(".maps");

static __always_inline int guard_drop(__u32 idx) {
  __u64* v = bpf_map_lookup_elem(&zm_guard_stats, &idx);
  if (v) *v += 1;
  return TC_ACT_SHOT;
}

static __always_inline int guard_pass(__u32 idx) {
  __u64* v = bpf_map_lookup_elem(&zm_guard_stats, &idx);
  if (v) *v += 1;
  return ZM_NEXT;
}

static __always_inline int is_strict_pod(const struct zm_pod* p) {
  return p && p->state == ZM_POD_ENROLLED && p->mode == ZM_MODE_STRICT;
}

static __always_inline int is_strict(__u32 addr) {
  return is_strict_pod(bpf_map_lookup_elem(&zm_pods, &addr));
}

static __always_inline struct zm_pod* pod6(const struct in6_addr* addr) {
  struct zm_addr6 key;
  __builtin_memcpy(&key, addr, sizeof(key));
  return bpf_map_lookup_elem(&zm_pods6, &key);
}

static __always_inline __u32 cfg_flags(void) {
  __u32 zero = 0;
  struct zm_cfg* cfg = bpf_map_lookup_elem(&zm_cfg, &zero);
  return cfg ? cfg->flags : 0;
}

/* UDP of a STRICT pod: DNS (either port 53, so a STRICT DNS server answers too) unless the mesh allows all UDP. */
static __always_inline int udp_allowed(__u16 sport, __u16 dport) {
  return sport == DNS_PORT || dport == DNS_PORT || (cfg_flags() & ZM_CFG_STRICT_UDP_ALLOW);
}

/* Remembers which pod a veth leads to, for its IPv6 packets. Only written when it changes. */
static __always_inline void learn_veth(__u32 ifindex, __u32 addr) {
  __u32* cur = bpf_map_lookup_elem(&zm_veth_pods, &ifindex);
  if (!cur || *cur != addr) bpf_map_update_elem(&zm_veth_pods, &ifindex, &addr, BPF_ANY);
}

/* The same for the pod's IPv6 (IPv6-only pods have no IPv4 to remember). */
static __always_inline void learn_veth6(__u32 ifindex, const struct in6_addr* addr) {
  struct zm_addr6 a;
  __builtin_memcpy(&a, addr, sizeof(a));
  struct zm_addr6* cur = bpf_map_lookup_elem(&zm_veth_pods6, &ifindex);
  if (!cur || cur->addr[0] != a.addr[0] || cur->addr[1] != a.addr[1] || cur->addr[2] != a.addr[2] ||
      cur->addr[3] != a.addr[3]) {
    bpf_map_update_elem(&zm_veth_pods6, &ifindex, &a, BPF_ANY);
  }
}

/* The pod behind a veth, by its IPv4 (zm_veth_pods), else by its IPv6 (zm_veth_pods6): for its IPv6 packets from or
 * to an address zm_pods6 lacks. */
static __always_inline struct zm_pod* veth_pod(__u32 ifindex) {
  __u32* addr = bpf_map_lookup_elem(&zm_veth_pods, &ifindex);
  struct zm_pod* p = addr ? bpf_map_lookup_elem(&zm_pods, addr) : 0;
  if (p) return p;
  struct zm_addr6* addr6 = bpf_map_lookup_elem(&zm_veth_pods6, &ifindex);
  return addr6 ? bpf_map_lookup_elem(&zm_pods6, addr6) : 0;
}

/* Extension headers before the transport header could hide TCP (a fragment, AH): never meshed. */
static __always_inline int ipv6_ext_header(__u8 nexthdr) {
  return nexthdr == 0 || nexthdr == 43 || nexthdr == 44 || nexthdr == 51 || nexthdr == 60;
}

/* IPv6 on a pod veth (either direction) from or to an address zm_pods6 does not know (the pod's IPv6 is not known to
 * the agent, or not its own): the proxy cannot mesh it, so for a STRICT pod (by its IPv4 mode) TCP, extension headers
 * and UDP other than DNS are dropped. ICMPv6 (neighbour discovery) and other protocols pass, as their IPv4 forms do. */
static __always_inline int ipv6_unmeshed(struct __sk_buff* skb, const struct zm_pod* vpod, __u8 nexthdr) {
  if (!is_strict_pod(vpod) || nexthdr == IPPROTO_ICMPV6_) return ZM_NEXT;
  if (nexthdr == IPPROTO_UDP_) {
    __u16 ports[2];
    if (bpf_skb_load_bytes_relative(skb, IPV6_HDR_LEN, ports, sizeof(ports), BPF_HDR_START_NET)) {
      return guard_drop(ZM_GUARD_IPV6);
    }
    if (udp_allowed(bpf_ntohs(ports[0]), bpf_ntohs(ports[1]))) return ZM_NEXT;
    return guard_drop(ZM_GUARD_IPV6);
  }
  if (nexthdr == IPPROTO_TCP_ || ipv6_ext_header(nexthdr)) return guard_drop(ZM_GUARD_IPV6);
  return ZM_NEXT;
}

static __always_inline void count(__u32 idx) {
  __u64* v = bpf_map_lookup_elem(&zm_stats, &idx);
  if (v) *v += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline void mark_local(struct __sk_buff* skb) {
  skb->mark = (skb->mark & ~ZM_MARK_MASK) | ZM_MARK_VALUE;
}

/* Assigns the listener in `slot` of `listeners` (zm_listeners or zm_listeners6: the SYN's family) to the SYN. No
 * listener: drop if `mode` is STRICT (fail closed), else pass. */
static __always_inline int capture(struct __sk_buff* skb, void* listeners, __u32 slot, __u8 mode, __u32 stat) {
  struct bpf_sock* sk = bpf_map_lookup_elem(listeners, &slot);
  if (!sk) {
    if (mode == ZM_MODE_PERMISSIVE) {
      count(ZM_STAT_PASSED_FAIL_OPEN);
      return ZM_NEXT;
    }
    count(ZM_STAT_DROPPED_FAIL_CLOSED);
    return TC_ACT_SHOT;
  }
  long err = bpf_sk_assign(skb, sk, 0);
  bpf_sk_release(sk);
  if (err) {
    /* A captured SYN must never leak past the proxy in STRICT mode. */
    count(ZM_STAT_ASSIGN_ERRORS);
    return mode == ZM_MODE_PERMISSIVE ? ZM_NEXT : TC_ACT_SHOT;
  }
  mark_local(skb);
  count(stat);
  return ZM_STEERED;
}

static __always_inline int dest_excluded(__u32 daddr, __u16 dport) {
  __u8* p = bpf_map_lookup_elem(&zm_excl_ports, &dport);
  if (p && (*p & ZM_EXCL_OUTBOUND)) return 1;
  struct zm_lpm_v4 key = {.prefixlen = 32, .addr = daddr};
  return bpf_map_lookup_elem(&zm_excl_cidrs, &key) != 0;
}

static __always_inline int dest_excluded6(const struct in6_addr* daddr, __u16 dport) {
  __u8* p = bpf_map_lookup_elem(&zm_excl_ports, &dport);
  if (p && (*p & ZM_EXCL_OUTBOUND)) return 1;
  struct zm_lpm_v6 key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, daddr, sizeof(key.addr));
  return bpf_map_lookup_elem(&zm_excl_cidrs6, &key) != 0;
}

static __always_inline int capture_unknown_enabled(void) {
  return (cfg_flags() & ZM_CFG_CAPTURE_UNKNOWN) != 0;
}

static __always_inline __u32 iface_role(__u32 ifindex) {
  __u32* role = bpf_map_lookup_elem(&zm_ifaces, &ifindex);
  return role ? *role : 0;
}

/* Rule a) of capture_ingress for either family: returns 1 with the verdict in *verdict when a socket other than a
 * listener owns the 4-tuple, else 0. */
static __always_inline int assign_owner(struct __sk_buff* skb, struct bpf_sock_tuple* tuple, __u32 len, int* verdict) {
  struct bpf_sock* sk = bpf_skc_lookup_tcp(skb, tuple, len, BPF_F_CURRENT_NETNS, 0);
  if (!sk) return 0;
  __u32 state = sk->state;
  if (state == BPF_TCP_LISTEN) {
    bpf_sk_release(sk);
    return 0;
  }
  long err = bpf_sk_assign(skb, sk, 0);
  bpf_sk_release(sk);
  if (err) {
    /* The socket is going away (-ENOENT): drop, TCP retransmits. Let through, the segment would reach the wire in
     * plaintext, or enter conntrack unmarked, where kube-proxy DNATs it to a Service endpoint. */
    count(ZM_STAT_ASSIGN_ERRORS);
    *verdict = TC_ACT_SHOT;
    return 1;
  }
  mark_local(skb);
  count(ZM_STAT_ASSIGNED_ESTABLISHED);
  *verdict = ZM_STEERED;
  return 1;
}

/* b) Outbound: a SYN from an enrolled local pod (or an unknown one while "capture unknown" is on) on its veth. Written
 * once for both families: `v6` (a constant at each call, so each inlined copy keeps only its family's maps) says
 * whether saddr/daddr are a struct in6_addr or a __u32. `unknown_ok`: an unknown source may be captured (IPv6: not when
 * the veth's pod is known, its other addresses followed ipv6_unmeshed). Returns 1 with *verdict set when it decided. */
static __always_inline int outbound_on_veth(struct __sk_buff* skb, __u32 ifindex, int v6, const void* saddr,
                                            const void* daddr, __u16 dport, struct zm_pod* src, int unknown_ok,
                                            int bare_syn, int* verdict) {
  int src_enrolled = src && src->state == ZM_POD_ENROLLED;
  __u8 mode = 0;
  if (src_enrolled)
    mode = src->mode;
  else if (!src && unknown_ok && capture_unknown_enabled())
    mode = ZM_MODE_STRICT; /* config not here yet: hold it in the proxy, never let it out in plaintext */
  if (src_enrolled && bare_syn) {
    if (v6)
      learn_veth6(ifindex, saddr);
    else
      learn_veth(ifindex, *(const __u32*)saddr);
  }
  if (!mode) return 0;
  if (v6 ? dest_excluded6(daddr, dport) : dest_excluded(*(const __u32*)daddr, dport)) return 0;
  if (bare_syn) {
    void* listeners = v6 ? (void*)&zm_listeners6 : (void*)&zm_listeners;
    *verdict = capture(skb, listeners, ZM_SLOT_OUTBOUND, mode, ZM_STAT_CAPTURED_OUTBOUND);
    return 1;
  }
  /* A segment of a captured flow whose proxy socket is gone (agent died or restarted), or of a direct flow opened
   * before enrollment: in STRICT mode its payload must not reach the wire in plaintext. */
  if (mode == ZM_MODE_STRICT) {
    count(ZM_STAT_DROPPED_ORPHAN);
    *verdict = TC_ACT_SHOT;
    return 1;
  }
  *verdict = ZM_NEXT;
  return 1;
}

/* c, d) Inbound: a bare SYN to the local pod `dst` (its family's listeners). HBONE always goes to the proxy; plaintext
 * in the pod's mode. An enrolled source reaching here did not come from its own veth (rule b took those): treat it as
 * foreign. */
static __always_inline int inbound_to_pod(struct __sk_buff* skb, void* listeners, const struct zm_pod* dst,
                                          __u16 dport) {
  if (!dst || dst->state != ZM_POD_ENROLLED) return ZM_NEXT;
  if (dport == ZM_HBONE_PORT) return capture(skb, listeners, ZM_SLOT_HBONE, ZM_MODE_STRICT, ZM_STAT_CAPTURED_HBONE);
  return capture(skb, listeners, ZM_SLOT_PLAINTEXT, dst->mode, ZM_STAT_CAPTURED_PLAINTEXT);
}

/* capture_ingress for IPv6: the same rules a-d with the IPv6 maps. Only TCP/UDP right after the fixed header is
 * meshed (extension headers from or to a STRICT pod are dropped). A veth's packets from an address zm_pods6 does not
 * know follow the veth's pod's mode first (ipv6_unmeshed), as before IPv6 was meshed. */
static __always_inline int capture_ingress6(struct __sk_buff* skb, __u32 ifindex) {
  struct ipv6hdr ip6;
  if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET)) return ZM_NEXT;
  if (ip6.version != 6) return ZM_NEXT;
  __u32 r = iface_role(ifindex);
  struct zm_pod* src = pod6(&ip6.saddr);
  int veth_known = 0; /* the veth's pod is known (zm_veth_pods[6]): no "capture unknown" for its other addresses */
  if (r == ZM_ROLE_POD_VETH && !src) {
    struct zm_pod* vpod = veth_pod(ifindex);
    int v = ipv6_unmeshed(skb, vpod, ip6.nexthdr);
    if (v != ZM_NEXT) return v;
    veth_known = vpod != 0;
  }
  if (ip6.nexthdr == IPPROTO_UDP_) {
    /* A STRICT pod's own UDP (on its veth): DNS only, unless the mesh allows UDP. Inbound UDP is the egress guard's. */
    if (r != ZM_ROLE_POD_VETH || !is_strict_pod(src)) return ZM_NEXT;
    learn_veth6(ifindex, &ip6.saddr);
    __u16 ports[2];
    if (bpf_skb_load_bytes_relative(skb, IPV6_HDR_LEN, ports, sizeof(ports), BPF_HDR_START_NET)) return ZM_NEXT;
    return udp_allowed(bpf_ntohs(ports[0]), bpf_ntohs(ports[1])) ? ZM_NEXT : guard_drop(ZM_GUARD_UDP);
  }
  if (ip6.nexthdr != IPPROTO_TCP_) {
    if (ipv6_ext_header(ip6.nexthdr) && (is_strict_pod(src) || is_strict_pod(pod6(&ip6.daddr)))) {
      return guard_drop(ZM_GUARD_IPV6);
    }
    return ZM_NEXT;
  }

  __u8 tcp[14];
  if (bpf_skb_load_bytes_relative(skb, IPV6_HDR_LEN, tcp, sizeof(tcp), BPF_HDR_START_NET)) return ZM_NEXT;
  __u16 sport_n = (__u16)tcp[0] | ((__u16)tcp[1] << 8);
  __u16 dport_n = (__u16)tcp[2] | ((__u16)tcp[3] << 8);
  __u8 flags = tcp[13];
  int bare_syn = (flags & TCP_FLAG_SYN) && !(flags & TCP_FLAG_ACK);

  /* a) A socket already owns this 4-tuple. */
  struct bpf_sock_tuple tuple = {};
  __builtin_memcpy(tuple.ipv6.saddr, &ip6.saddr, sizeof(tuple.ipv6.saddr));
  __builtin_memcpy(tuple.ipv6.daddr, &ip6.daddr, sizeof(tuple.ipv6.daddr));
  tuple.ipv6.sport = sport_n;
  tuple.ipv6.dport = dport_n;
  int verdict;
  if (assign_owner(skb, &tuple, sizeof(tuple.ipv6), &verdict)) return verdict;

  __u16 dport = bpf_ntohs(dport_n);
  /* b) Outbound on a pod veth. */
  if (r == ZM_ROLE_POD_VETH &&
      outbound_on_veth(skb, ifindex, 1, &ip6.saddr, &ip6.daddr, dport, src, !veth_known, bare_syn, &verdict)) {
    return verdict;
  }
  if (!bare_syn) return ZM_NEXT;

  /* c, d) Inbound to an enrolled local pod. */
  return inbound_to_pod(skb, &zm_listeners6, pod6(&ip6.daddr), dport);
}

static __always_inline int capture_ingress(struct __sk_buff* skb) {
  __u32 ifindex = skb->ingress_ifindex;
  if (skb->protocol == bpf_htons(ETH_P_IPV6)) return capture_ingress6(skb, ifindex);
  if (skb->protocol != bpf_htons(ETH_P_IP)) return ZM_NEXT;

  /* Relative to the network header, so L3-only uplinks (no Ethernet header) work too. */
  struct iphdr iph;
  if (bpf_skb_load_bytes_relative(skb, 0, &iph, sizeof(iph), BPF_HDR_START_NET)) return ZM_NEXT;
  if (iph.version != 4 || iph.ihl < 5) return ZM_NEXT;
  if (iph.protocol == IPPROTO_UDP_) {
    /* A STRICT pod's own UDP (on its veth): DNS only, unless the mesh allows UDP. Inbound UDP is the egress guard's. */
    if (iface_role(ifindex) != ZM_ROLE_POD_VETH || !is_strict(iph.saddr)) return ZM_NEXT;
    learn_veth(ifindex, iph.saddr);
    __u16 ports[2];
    if (bpf_ntohs(iph.frag_off) & IP_OFFSET_MASK) return ZM_NEXT; /* the first fragment decided */
    if (bpf_skb_load_bytes_relative(skb, iph.ihl * 4, ports, sizeof(ports), BPF_HDR_START_NET)) return ZM_NEXT;
    return udp_allowed(bpf_ntohs(ports[0]), bpf_ntohs(ports[1])) ? ZM_NEXT : guard_drop(ZM_GUARD_UDP);
  }
  if (iph.protocol != IPPROTO_TCP_) return ZM_NEXT;
  /* TCP sets DF, so a TCP fragment is crafted: its first part could be captured while the rest passes in plaintext,
   * or a later fragment carry the payload past the proxy. None for STRICT pods, either way. */
  if (bpf_ntohs(iph.frag_off) & (IP_MF | IP_OFFSET_MASK)) {
    if (is_strict(iph.daddr) || is_strict(iph.saddr)) return guard_drop(ZM_GUARD_FRAGMENT);
    if (bpf_ntohs(iph.frag_off) & IP_OFFSET_MASK) return ZM_NEXT; /* non-first fragment: no TCP header */
  }

  /* Ports (4 bytes) and the flags byte (offset 13) of the TCP header. */
  __u8 tcp[14];
  if (bpf_skb_load_bytes_relative(skb, iph.ihl * 4, tcp, sizeof(tcp), BPF_HDR_START_NET)) return ZM_NEXT;
  __u16 sport_n = (__u16)tcp[0] | ((__u16)tcp[1] << 8); /* network order, as the wire has it */
  __u16 dport_n = (__u16)tcp[2] | ((__u16)tcp[3] << 8);
  __u8 flags = tcp[13];
  int bare_syn = (flags & TCP_FLAG_SYN) && !(flags & TCP_FLAG_ACK);

  /* a) A socket already owns this 4-tuple: every later packet of a proxied flow, and the replies to the proxy's
   *    transparently-sourced upstream sockets. Listeners are skipped (plain routing or rules b-d decide).
   *    TIME_WAIT and request sockets are assigned too (bpf_sk_assign takes any sock_common): a SYN reusing a
   *    TIME_WAIT tuple then gets the kernel's TIME_WAIT answer, the client resets it and retries within
   *    milliseconds into the listener. Assigning the listener instead fails for the whole TIME_WAIT period (the
   *    kernel refuses a request socket that duplicates a hashed tuple). */
  struct bpf_sock_tuple tuple = {};
  tuple.ipv4.saddr = iph.saddr;
  tuple.ipv4.daddr = iph.daddr;
  tuple.ipv4.sport = sport_n;
  tuple.ipv4.dport = dport_n;
  int verdict;
  if (assign_owner(skb, &tuple, sizeof(tuple.ipv4), &verdict)) return verdict;

  __u32 r = iface_role(ifindex);
  __u16 dport = bpf_ntohs(dport_n);

  /* b) Outbound on a pod veth. */
  struct zm_pod* src = bpf_map_lookup_elem(&zm_pods, &iph.saddr);
  if (r == ZM_ROLE_POD_VETH &&
      outbound_on_veth(skb, ifindex, 0, &iph.saddr, &iph.daddr, dport, src, 1, bare_syn, &verdict)) {
    return verdict;
  }
  if (!bare_syn) return ZM_NEXT;

  /* c, d) Inbound to an enrolled local pod. */
  return inbound_to_pod(skb, &zm_listeners, bpf_map_lookup_elem(&zm_pods, &iph.daddr), dport);
}

/* tcx egress of a pod veth: what is about to enter the pod. Captured connections never pass here as bare SYNs (their
 * SYN was assigned to the proxy at ingress and the proxy's own sockets carry ZM_MARK_PROXY), so a bare SYN to a STRICT
 * pod without that mark came from the node's own netns, or from a path the ingress program does not hook. The node's
 * netns (locally generated: no ingress interface) may reach the pod's probe ports, as the kubelet must; nothing else.
 */
static __always_inline int guard_egress6(struct __sk_buff* skb, __u32 ifindex) {
  struct ipv6hdr ip6;
  if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET)) return ZM_NEXT;
  if (ip6.version != 6) return ZM_NEXT;
  struct zm_pod* dst = pod6(&ip6.daddr);
  if (!dst) return ipv6_unmeshed(skb, veth_pod(ifindex), ip6.nexthdr); /* not a known IPv6 of the pod */
  if (!is_strict_pod(dst) || ip6.nexthdr == IPPROTO_ICMPV6_) return ZM_NEXT;
  if (ip6.nexthdr == IPPROTO_UDP_) {
    learn_veth6(ifindex, &ip6.daddr);
    __u16 ports[2];
    if (bpf_skb_load_bytes_relative(skb, IPV6_HDR_LEN, ports, sizeof(ports), BPF_HDR_START_NET)) return ZM_NEXT;
    return udp_allowed(bpf_ntohs(ports[0]), bpf_ntohs(ports[1])) ? ZM_NEXT : guard_drop(ZM_GUARD_UDP);
  }
  if (ip6.nexthdr != IPPROTO_TCP_) return ipv6_ext_header(ip6.nexthdr) ? guard_drop(ZM_GUARD_IPV6) : ZM_NEXT;
  __u8 tcp[14];
  if (bpf_skb_load_bytes_relative(skb, IPV6_HDR_LEN, tcp, sizeof(tcp), BPF_HDR_START_NET)) return ZM_NEXT;
  __u8 flags = tcp[13];
  if (!(flags & TCP_FLAG_SYN) || (flags & TCP_FLAG_ACK)) return ZM_NEXT;
  learn_veth6(ifindex, &ip6.daddr);
  if ((skb->mark & ZM_MARK_MASK) == ZM_MARK_PROXY) return ZM_NEXT;
  if (skb->ingress_ifindex == 0) {
    struct zm_probe_key6 key = {.port = ((__u16)tcp[2] << 8) | tcp[3], .pad = 0};
    __builtin_memcpy(key.addr, &ip6.daddr, sizeof(key.addr));
    if (bpf_map_lookup_elem(&zm_probe_ports6, &key)) return guard_pass(ZM_GUARD_PROBE_PASSED);
  }
  return guard_drop(ZM_GUARD_NODE_PLAINTEXT);
}

/* IPv4 here; IPv6 takes guard_egress6 (the same rules with zm_pods6 and zm_probe_ports6). */
static __always_inline int guard_egress(struct __sk_buff* skb) {
  __u32 ifindex = skb->ifindex;
  if (skb->protocol == bpf_htons(ETH_P_IPV6)) return guard_egress6(skb, ifindex);
  if (skb->protocol != bpf_htons(ETH_P_IP)) return ZM_NEXT;
  struct iphdr iph;
  if (bpf_skb_load_bytes_relative(skb, 0, &iph, sizeof(iph), BPF_HDR_START_NET)) return ZM_NEXT;
  if (iph.version != 4 || iph.ihl < 5) return ZM_NEXT;
  __u16 frag = bpf_ntohs(iph.frag_off);
  if (iph.protocol == IPPROTO_UDP_) {
    if (!is_strict(iph.daddr)) return ZM_NEXT;
    learn_veth(ifindex, iph.daddr);
    if (frag & IP_OFFSET_MASK) return ZM_NEXT; /* the first fragment decided */
    __u16 ports[2];
    if (bpf_skb_load_bytes_relative(skb, iph.ihl * 4, ports, sizeof(ports), BPF_HDR_START_NET)) return ZM_NEXT;
    return udp_allowed(bpf_ntohs(ports[0]), bpf_ntohs(ports[1])) ? ZM_NEXT : guard_drop(ZM_GUARD_UDP);
  }
  if (iph.protocol != IPPROTO_TCP_) return ZM_NEXT;
  /* Most packets stop at the flags check: the pod lookup is for fragments and new connections only. */
  if (frag & (IP_MF | IP_OFFSET_MASK)) return is_strict(iph.daddr) ? guard_drop(ZM_GUARD_FRAGMENT) : ZM_NEXT;
  __u8 tcp[14];
  if (bpf_skb_load_bytes_relative(skb, iph.ihl * 4, tcp, sizeof(tcp), BPF_HDR_START_NET)) return ZM_NEXT;
  __u8 flags = tcp[13];
  if (!(flags & TCP_FLAG_SYN) || (flags & TCP_FLAG_ACK)) return ZM_NEXT; /* only new connections are decided */
  if (!is_strict(iph.daddr)) return ZM_NEXT;
  learn_veth(ifindex, iph.daddr);
  if ((skb->mark & ZM_MARK_MASK) == ZM_MARK_PROXY) return ZM_NEXT;
  if (skb->ingress_ifindex == 0) { /* generated in the node's own netns */
    struct zm_probe_key key = {.addr = iph.daddr, .port = ((__u16)tcp[2] << 8) | tcp[3], .pad = 0};
    if (bpf_map_lookup_elem(&zm_probe_ports, &key)) return guard_pass(ZM_GUARD_PROBE_PASSED);
  }
  return guard_drop(ZM_GUARD_NODE_PLAINTEXT);
}

SEC("tc")
int zm_capture(struct __sk_buff* skb) {
  return capture_ingress(skb);
}

SEC("tc")
int zm_guard_egress(struct __sk_buff* skb) {
  return guard_egress(skb);
}

/* The same two programs under other names. tcx refuses a program twice on one hook, so the agent moving a displaced
 * link of ours back to the front (BpfManager::RepairPosition) first switches the old link to the twin, attaches the
 * original first, then detaches the old link: our logic runs on the device at every instant. Never left attached. */
SEC("tc")
int zm_capture_twin(struct __sk_buff* skb) {
  return capture_ingress(skb);
}

SEC("tc")
int zm_guard_egress_twin(struct __sk_buff* skb) {
  return guard_egress(skb);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
