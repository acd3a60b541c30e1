// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* Node-local sk_msg redirection (docs/design.md, "sockmap"): a byte an enrolled pod sends to the proxy (or the proxy
 * to the pod) is put straight into the other socket's receive queue instead of crossing TCP, IP, the veth and our tc
 * program twice. Only the sockets of connections the proxy reads and writes itself (never its splice relays) have
 * their proxy side in zm_socks: the proxy adds them from user space; the pods' sockets enter here, at establishment.
 *
 * A redirected byte lands in the reader's psock queue, which tcp_bpf_recvmsg serves before the TCP receive queue. So a
 * send may be redirected only when no TCP byte of that direction is still unread or in flight, or the reader would
 * see it first; and the reader's queue must stay bounded, since the redirect never makes the writer wait:
 *  - pod -> proxy: redirect when the pod has nothing unacknowledged and the proxy has read every TCP byte it got
 *    (then psock bytes and TCP bytes can never interleave), and the proxy has less than max_unread queued. Past that
 *    the pod writes by TCP, whose window stops it; it comes back once the proxy read everything. What a reader has
 *    read is known from its own sends (every socket of the map records it in zm_sock_readers at each sendmsg; no
 *    tracing program: fentry/kprobes are not available everywhere), so a reader that never writes back is seen with
 *    the queue it had: a one-way upload redirects its first max_unread bytes, then stays on TCP.
 *  - proxy -> pod: the pod's app is the reader, possibly blocked inside tcp_recvmsg (MSG_WAITALL) where a psock byte
 *    would not wake it: redirect only while the flow never carried a TCP byte, and the pod has less than max_unread
 *    queued; once one send went by TCP the flow stays on TCP (demoted).
 * Anything else (no peer, map full, redirect refused) is an ordinary TCP send, still through the proxy. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "capture_abi.h"
#include "pod_maps.h"
#include "sockmap_abi.h"

#define AF_INET_ 2
#define AF_INET6_ 10
#define SK_USER_DATA_PTRMASK_ (~7UL) /* sk_user_data's low bits are flags (SK_USER_DATA_NOCOPY, _BPF, _PSOCK) */

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, ZM_MAX_SOCKS);
  __type(key, struct zm_sock_key);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, ZM_MAX_SOCKS);
  __type(key, struct zm_sock_key);
  __type(value, struct zm_sock_reader);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_sock_readers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zm_sockmap_cfg);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_sockmap_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ZM_SM_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_sockmap_stats SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n) {
  __u64* v = bpf_map_lookup_elem(&zm_sockmap_stats, &idx);
  if (v) *v += n;
}

static __always_inline struct zm_sockmap_cfg* cfg(void) {
  __u32 zero = 0;
  struct zm_sockmap_cfg* c = bpf_map_lookup_elem(&zm_sockmap_cfg, &zero);
  return c && c->netns_cookie != 0 ? c : 0;
}

static __always_inline int is_v4_mapped(const __u32 a[4]) {
  return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* The socket's own view of its tuple; 0 for anything but TCP over IPv4/IPv6. */
static __always_inline int key_of(struct bpf_sock* sk, __u8 side, struct zm_sock_key* k) {
  __builtin_memset(k, 0, sizeof(*k));
  if (sk->protocol != IPPROTO_TCP) return 0;
  if (sk->family == AF_INET_) {
    k->family = 4;
    k->local[0] = sk->src_ip4;
    k->remote[0] = sk->dst_ip4;
  } else if (sk->family == AF_INET6_) {
    __u32 l[4] = {sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3]};
    __u32 r[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
    if (is_v4_mapped(l) && is_v4_mapped(r)) {
      k->family = 4;
      k->local[0] = l[3];
      k->remote[0] = r[3];
    } else {
      k->family = 6;
      __builtin_memcpy(k->local, l, sizeof(l));
      __builtin_memcpy(k->remote, r, sizeof(r));
    }
  } else {
    return 0;
  }
  k->lport = (__u16)sk->src_port;
  k->rport = bpf_ntohs(sk->dst_port);
  k->side = side;
  return 1;
}

static __always_inline void peer_of(const struct zm_sock_key* k, struct zm_sock_key* p) {
  __builtin_memset(p, 0, sizeof(*p));
  __builtin_memcpy(p->local, k->remote, sizeof(p->local));
  __builtin_memcpy(p->remote, k->local, sizeof(p->remote));
  p->lport = k->rport;
  p->rport = k->lport;
  p->family = k->family;
  p->side = k->side == ZM_SIDE_POD ? ZM_SIDE_PROXY : ZM_SIDE_POD;
}

static __always_inline int enrolled(const struct zm_sock_key* k) {
  struct zm_pod* pod;
  if (k->family == 4) {
    __u32 a = k->local[0];
    pod = bpf_map_lookup_elem(&zm_pods, &a);
  } else {
    struct zm_addr6 a;
    __builtin_memcpy(a.addr, k->local, sizeof(a.addr));
    pod = bpf_map_lookup_elem(&zm_pods6, &a);
  }
  return pod && pod->state == ZM_POD_ENROLLED;
}

/* Pods' sockets enter zm_socks when they are established, before their app can send or receive a byte. */
SEC("sockops")
int zm_sockops(struct bpf_sock_ops* ctx) {
  if (ctx->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && ctx->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) return 1;
  struct zm_sockmap_cfg* c = cfg();
  if (!c || c->flags == 0) return 1;
  if (bpf_get_netns_cookie(ctx) == c->netns_cookie) return 1; /* the proxy's: added by the proxy when it wants it */
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return 1;
  struct zm_sock_key k;
  if (!key_of(sk, ZM_SIDE_POD, &k) || !enrolled(&k)) return 1;
  /* A new connection: fresh reader entries for both of its sockets (whatever an earlier one of the same tuple left
   * is not about this one). A verdict that finds none (evicted) does not redirect: it cannot bound the reader. */
  struct zm_sock_key p;
  peer_of(&k, &p);
  struct zm_sock_reader fresh = {};
  bpf_map_update_elem(&zm_sock_readers, &k, &fresh, BPF_ANY);
  bpf_map_update_elem(&zm_sock_readers, &p, &fresh, BPF_ANY);
  if (bpf_sock_hash_update(ctx, &zm_socks, &k, BPF_ANY) == 0) {
    count(ZM_SM_SOCKETS_ADDED, 1);
  } else {
    count(ZM_SM_ADD_ERRORS, 1);
  }
  return 1;
}

/* Unread redirected bytes queued for this socket (its psock's ingress queue). */
static __always_inline __u32 own_unread(struct tcp_sock* tp) {
  unsigned long ud = (unsigned long)tp->inet_conn.icsk_inet.sk.sk_user_data & SK_USER_DATA_PTRMASK_;
  return ud ? BPF_CORE_READ((struct sk_psock*)ud, msg_tot_len) : 0;
}

SEC("sk_msg")
int zm_sk_msg(struct sk_msg_md* msg) {
  struct zm_sockmap_cfg* c = cfg();
  struct bpf_sock* sk = msg->sk;
  if (!c || !sk) return SK_PASS;
  const int from_pod = bpf_get_netns_cookie(msg) != c->netns_cookie;
  struct zm_sock_key me, peer_key;
  if (!key_of(sk, from_pod ? ZM_SIDE_POD : ZM_SIDE_PROXY, &me)) return SK_PASS;
  peer_of(&me, &peer_key);
  struct tcp_sock* wtp = bpf_skc_to_tcp_sock(sk);
  if (!wtp) return SK_PASS;
  /* This socket is a reader too: what it has read so far, for its peer's next verdict. A snapshot can only be older
   * than the truth: less read, more queued; both err towards TCP. */
  struct zm_sock_reader me_st = {.copied_seq = wtp->copied_seq, .unread = own_unread(wtp), .seq_valid = 1};
  bpf_map_update_elem(&zm_sock_readers, &me, &me_st, BPF_ANY);

  if (!(c->flags & (from_pod ? ZM_SOCKMAP_FROM_POD : ZM_SOCKMAP_TO_POD))) return SK_PASS;
  const int sent_tcp = wtp->bytes_sent != 0;
  if (!from_pod && sent_tcp) return SK_PASS; /* demoted for good */
  struct zm_sock_reader* r = bpf_map_lookup_elem(&zm_sock_readers, &peer_key);
  if (!r) {
    count(ZM_SM_PASSED_NO_PEER, 1);
    if (!from_pod) count(ZM_SM_DEMOTED_TO_POD, 1);
    return SK_PASS;
  }
  /* Every TCP byte this socket sent must be acknowledged (so in the reader's receive queue) and read. */
  if (wtp->snd_una != wtp->write_seq || (sent_tcp && (!r->seq_valid || r->copied_seq != wtp->write_seq))) {
    count(ZM_SM_PASSED_TCP_PENDING, 1);
    return SK_PASS;
  }
  if ((__u64)r->unread + r->added + msg->size > c->max_unread) {
    count(ZM_SM_PASSED_BACKPRESSURE, 1);
    if (!from_pod) count(ZM_SM_DEMOTED_TO_POD, 1);
    return SK_PASS;
  }
  /* Fails when the other side is not in zm_socks: the proxy did not add it (a splice relay, a flow it does not
   * accelerate) or it is closed. Nothing is redirected then, and SK_PASS sends by TCP. */
  if (bpf_msg_redirect_hash(msg, &zm_socks, &peer_key, BPF_F_INGRESS) != SK_PASS) {
    count(ZM_SM_PASSED_NO_PEER, 1);
    if (!from_pod) count(ZM_SM_DEMOTED_TO_POD, 1);
    return SK_PASS;
  }
  /* Lost if the reader's snapshot replaces the entry at this very moment: the bound is off by one message then. */
  __sync_fetch_and_add(&r->added, msg->size);
  count(ZM_SM_REDIRECTED_BYTES, msg->size);
  count(ZM_SM_REDIRECTED_MSGS, 1);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
