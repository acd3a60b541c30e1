/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The pod maps (capture_abi.h's struct zm_pod by IPv4 address and by IPv6 address), defined once for the capture and
 * the sockmap program: both open the same maps pinned by name, which libbpf reuses only when the definitions match.
 * Include after vmlinux.h, bpf_helpers.h and capture_abi.h. */
#ifndef ZEROMESH_BPF_POD_MAPS_H_
#define ZEROMESH_BPF_POD_MAPS_H_

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_PODS);
  __type(key, __u32);
  __type(value, struct zm_pod);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_pods SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZM_MAX_PODS);
  __type(key, struct zm_addr6);
  __type(value, struct zm_pod);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} zm_pods6 SEC(".maps");

#endif /* ZEROMESH_BPF_POD_MAPS_H_ */
