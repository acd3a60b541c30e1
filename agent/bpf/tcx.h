// tcx (BPF_TCX_INGRESS) attach, link info and query. The kernel here (6.18) has tcx, but the installed uapi headers
// and libbpf 1.1 predate it, so the few constants and struct layouts needed are mirrored here.
#pragma once

#include <cstdint>
#include <vector>

#include "agent/bpf/status.h"

namespace zm::agent::bpf {

inline constexpr int kAttachTcxIngress = 46;  // enum bpf_attach_type BPF_TCX_INGRESS
inline constexpr int kAttachTcxEgress = 47;   // enum bpf_attach_type BPF_TCX_EGRESS
inline constexpr uint32_t kLinkTypeTcx = 11;  // enum bpf_link_type BPF_LINK_TYPE_TCX

struct LinkInfo {
  uint32_t type = 0;
  uint32_t id = 0;
  uint32_t prog_id = 0;
  uint32_t ifindex = 0;  // tcx links: 0 once the interface is gone
  uint32_t attach_type = 0;
};

inline constexpr uint32_t kTcxBefore = 1u << 3;  // BPF_F_BEFORE: alone (no relative object) = first in the chain
inline constexpr uint32_t kTcxAfter = 1u << 4;   // BPF_F_AFTER: alone = last in the chain

// Attaches prog_fd at tcx ingress (or egress) of ifindex (in the caller's netns), FIRST in the chain (BPF_F_BEFORE
// with no relative object), so that a program attached later (a CNI's) runs after ours instead of ahead of it.
// Returns the link fd in *link_fd.
Status AttachTcxIngress(int prog_fd, uint32_t ifindex, int* link_fd);
Status AttachTcxEgress(int prog_fd, uint32_t ifindex, int* link_fd);
// The raw form: BPF_LINK_CREATE with the tcx attr of Linux 6.6 (libbpf 1.1's opts have no tcx member). flags: 0
// (append), kTcxBefore or kTcxAfter; no relative object. attach_type: kAttachTcxIngress or kAttachTcxEgress.
Status AttachTcx(int prog_fd, uint32_t ifindex, int attach_type, uint32_t flags, int* link_fd);
Status GetLinkInfo(int link_fd, LinkInfo* out);
Status GetProgId(int prog_fd, uint32_t* id);

struct TcxQueryResult {
  std::vector<uint32_t> prog_ids;  // in execution order
  std::vector<uint32_t> link_ids;  // parallel to prog_ids; 0 for non-link attachments
};
// Lists the programs attached at tcx ingress (egress) of ifindex (in the caller's netns), in execution order.
Status QueryTcxIngress(uint32_t ifindex, TcxQueryResult* out);
Status QueryTcxEgress(uint32_t ifindex, TcxQueryResult* out);
Status QueryTcx(uint32_t ifindex, int attach_type, TcxQueryResult* out);

}  // namespace zm::agent::bpf
