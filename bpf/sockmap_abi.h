/* Contract between bpf/sockmap.bpf.c and the agent (agent/bpf/sockmap_manager.h): node-local sk_msg redirection
 * between an enrolled pod's socket and the proxy's socket of the same connection (docs/design.md, "sockmap").
 * Plain C so that both the BPF program (with vmlinux.h) and C++ can include it. */
#ifndef ZEROMESH_BPF_SOCKMAP_ABI_H_
#define ZEROMESH_BPF_SOCKMAP_ABI_H_

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* zm_socks (SOCKHASH): struct zm_sock_key -> socket. The 4-tuple as the socket itself sees it (local first), plus
 * which side it is on, so that the proxy's socket and the pod's socket of one connection (same addresses, swapped)
 * never collide even when the proxy's inbound upstream socket carries the very tuple of a same-node client pod. An
 * IPv4-mapped IPv6 address is keyed as IPv4 (family 4), as the proxy's AF_INET socket sees it. */
#define ZM_SIDE_POD 1
#define ZM_SIDE_PROXY 2
struct zm_sock_key {
  __u32 local[4];  /* network byte order; IPv4 in local[0], the rest zero */
  __u32 remote[4]; /* same */
  __u16 lport;     /* host byte order */
  __u16 rport;     /* host byte order */
  __u8 side;       /* ZM_SIDE_* */
  __u8 family;     /* 4 or 6 */
  __u16 pad;       /* zero */
};

/* zm_sockmap_cfg: array[1]. netns_cookie: the agent's (node) netns; a socket there is the proxy's, any other is a
 * pod's. flags: what to redirect. */
#define ZM_SOCKMAP_FROM_POD (1u << 0) /* pod -> proxy (the proxy is the reader) */
#define ZM_SOCKMAP_TO_POD (1u << 1)   /* proxy -> pod (the pod's app is the reader) */
struct zm_sockmap_cfg {
  __u64 netns_cookie;
  __u32 flags;
  __u32 max_unread; /* bytes a reader may have queued and unread before its writer falls back to TCP */
};

/* zm_sock_readers (LRU hash): struct zm_sock_key of a reading socket in zm_socks -> struct zm_sock_reader, its state
 * after its last read (fexit of tcp_bpf_recvmsg) plus what was redirected to it since. A writer's verdict uses it to
 * know whether the reader consumed every TCP byte the writer ever sent (same sequence space: the reader's copied_seq
 * equals the writer's write_seq) and how much redirected data waits unread. Reset when a pod socket is established. */
struct zm_sock_reader {
  __u32 copied_seq; /* reader's tcp copied_seq after its last read (valid when seq_valid) */
  __u32 unread;     /* its psock's msg_tot_len after that read */
  __u32 added;      /* bytes redirected to it since that read */
  __u32 seq_valid;  /* 1 once the reader read at least once */
};

/* zm_sockmap_stats: per-CPU array of u64 counters. */
#define ZM_SM_REDIRECTED_BYTES 0
#define ZM_SM_REDIRECTED_MSGS 1
#define ZM_SM_PASSED_NO_PEER 2      /* sends from a socket of the map whose other side is not (yet) in it */
#define ZM_SM_PASSED_BACKPRESSURE 3 /* the reader had max_unread bytes queued: this send went by TCP */
#define ZM_SM_PASSED_TCP_PENDING 4  /* pod -> proxy: earlier TCP bytes not yet read by the proxy */
#define ZM_SM_DEMOTED_TO_POD 5      /* proxy -> pod flows that went to TCP for good */
#define ZM_SM_SOCKETS_ADDED 6       /* pod sockets the sock_ops program put in zm_socks */
#define ZM_SM_ADD_ERRORS 7          /* ... that it could not (map full) */
#define ZM_SM_COUNT 16              /* room for more without changing the pinned map */

#define ZM_MAX_SOCKS 65536
#define ZM_SOCKMAP_DEFAULT_MAX_UNREAD (1u << 20)

#endif /* ZEROMESH_BPF_SOCKMAP_ABI_H_ */
