// The fallback for kernels without tcx (before Linux 6.6): the same programs as cls_bpf direct-action filters on a
// clsact qdisc, through libbpf's bpf_tc_* API. A filter belongs to the kernel, not to a file descriptor, so it stays
// attached while the agent restarts (what pinned links give in tcx mode) and is found again by its priority/handle.
//
// Coexistence with other tc programs (a CNI's, a firewall's): ours is one filter of its own handle, at priority 1 by
// default, so it runs before filters at higher priority numbers; the clsact qdisc is shared and never deleted by us.
// The capture program's TCX_NEXT is TC_ACT_UNSPEC, which cls_bpf treats as "go on to the next filter".
#pragma once

#include <cstdint>

#include "agent/bpf/status.h"

namespace zm::agent::bpf {

inline constexpr uint32_t kTcHandle = 0x7a6d;      // "zm": identifies our filter at its priority
inline constexpr uint32_t kTcDefaultPriority = 1;  // lowest number = runs first (tc prio 1..65535)

enum class TcDirection { kIngress, kEgress };

// Attaches (or atomically replaces, same handle/priority) prog_fd on ifindex's clsact hook, creating the clsact qdisc
// when missing. In the caller's netns.
Status AttachClsact(int prog_fd, uint32_t ifindex, TcDirection dir, uint32_t priority);
// Removes our filter; a missing filter, qdisc or interface is Ok.
Status DetachClsact(uint32_t ifindex, TcDirection dir, uint32_t priority);
// The program id of our filter, or 0 when it is not there (removed, qdisc deleted, interface gone).
Status QueryClsact(uint32_t ifindex, TcDirection dir, uint32_t priority, uint32_t* prog_id);

const char* TcDirectionName(TcDirection dir);

// True while this thread runs one of the calls above: libbpf then reports the kernel's extack text for expected
// outcomes ("Parent Qdisc doesn't exists" for a device without clsact, "Exclusivity flag on" for one with it), which
// the agent's libbpf log callback leaves out.
bool InExpectedTcError();

}  // namespace zm::agent::bpf
