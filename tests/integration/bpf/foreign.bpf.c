// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* Test only: "foreign" tcx programs, as a CNI or a firewall would put beside ours (tcx_chain_test.cc).
 * fx_drop drops IPv4 TCP to drop_port (the marked flow) and lets everything else go on (TCX_NEXT);
 * fx_pass counts IPv4 TCP and ends the chain with TCX_PASS, as a CNI that passes everything. Counters are globals
 * (.bss), read by the test through the skeleton. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define FX_NEXT (-1) /* TCX_NEXT */
#define FX_PASS 0    /* TCX_PASS */
#define FX_DROP 2    /* TCX_DROP */
#define ETH_P_IP 0x0800
#define IPPROTO_TCP_ 6

const volatile __u16 drop_port = 0;  /* fx_drop: TCP destination port dropped (host order) */
const volatile __u16 watch_port = 0; /* fx_pass: TCP destination port counted apart (host order) */

__u64 drop_seen = 0;  /* fx_drop: packets of the marked flow it dropped */
__u64 drop_other = 0; /* fx_drop: other IPv4 TCP packets it let go on */
__u64 pass_seen = 0;  /* fx_pass: IPv4 TCP packets */
__u64 pass_watch = 0; /* fx_pass: IPv4 TCP packets to watch_port */

/* Destination port of an IPv4 TCP packet (host order), or 0. */
static __always_inline __u16 tcp_dport(struct __sk_buff* skb) {
  if (skb->protocol != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr iph;
  if (bpf_skb_load_bytes_relative(skb, 0, &iph, sizeof(iph), BPF_HDR_START_NET)) return 0;
  if (iph.version != 4 || iph.ihl < 5 || iph.protocol != IPPROTO_TCP_) return 0;
  __u16 ports[2];
  if (bpf_skb_load_bytes_relative(skb, iph.ihl * 4, ports, sizeof(ports), BPF_HDR_START_NET)) return 0;
  return bpf_ntohs(ports[1]);
}

SEC("tc")
int fx_drop(struct __sk_buff* skb) {
  __u16 dport = tcp_dport(skb);
  if (!dport) return FX_NEXT;
  if (dport == drop_port) {
    __sync_fetch_and_add(&drop_seen, 1);
    return FX_DROP;
  }
  __sync_fetch_and_add(&drop_other, 1);
  return FX_NEXT;
}

SEC("tc")
int fx_pass(struct __sk_buff* skb) {
  __u16 dport = tcp_dport(skb);
  if (!dport) return FX_PASS;
  __sync_fetch_and_add(&pass_seen, 1);
  if (dport == watch_port) __sync_fetch_and_add(&pass_watch, 1);
  return FX_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
