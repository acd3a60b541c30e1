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

// Attaches prog_fd at tcx ingress (or egress) of ifindex (in the caller's netns). Returns the link fd in *link_fd.
Status AttachTcxIngress(int prog_fd, uint32_t ifindex, int* link_fd);
Status AttachTcxEgress(int prog_fd, uint32_t ifindex, int* link_fd);
Status GetLinkInfo(int link_fd, LinkInfo* out);
Status GetProgId(int prog_fd, uint32_t* id);

struct TcxQueryResult {
  std::vector<uint32_t> prog_ids;  // in execution order
  std::vector<uint32_t> link_ids;  // parallel to prog_ids; 0 for non-link attachments
};
// Lists the programs attached at tcx ingress of ifindex (in the caller's netns).
Status QueryTcxIngress(uint32_t ifindex, TcxQueryResult* out);

}  // namespace zm::agent::bpf
