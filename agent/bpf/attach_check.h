// Verifies attachments with the kernel rather than trusting the manager's bookkeeping: each link the manager holds
// must be listed by BPF_PROG_QUERY at tcx ingress of its interface (someone may have detached it by hand), in tc mode
// our filter must be there (Attachments() asked the kernel), and every
// veth in the node netns must have an attachment (a pod veth without one is traffic that escapes capture).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/bpf/bpf_manager.h"
#include "agent/bpf/link_watcher.h"

namespace zm::agent::bpf {

struct AttachmentHealth {
  std::string ifname;
  uint32_t ifindex = 0;
  IfaceRole role = IfaceRole::kPodVeth;
  bool attached = false;
  std::string error;  // why not, for the status report
  int position = -1;  // index of our link at tcx ingress (0: first, as attached); -1 when not listed
  uint32_t repairs = 0;
  int64_t last_repair_unix = 0;
  std::string last_repair;
  bool tc = false;  // a tc filter, not a tcx link
};

// Interfaces of the calling thread's netns (an RTM_GETLINK dump).
Status ListLinks(std::vector<LinkEvent>* out);

// `links`: the netns's interfaces (ListLinks). Queries the kernel for each known attachment.
std::vector<AttachmentHealth> CheckAttachments(const std::vector<Attachment>& known,
                                               const std::vector<LinkEvent>& links);

}  // namespace zm::agent::bpf
