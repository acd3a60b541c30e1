#include "agent/bpf/attach_check.h"

#include <algorithm>

#include "agent/bpf/tcx.h"

namespace zm::agent::bpf {

Status ListLinks(std::vector<LinkEvent>* out) {
  out->clear();
  LinkWatcher dump([out](const LinkEvent& ev) {
    if (ev.type == LinkEvent::Type::kAdded) out->push_back(ev);
  });
  if (Status s = dump.Start(); !s.ok()) return s;
  for (int i = 0; i < 50 && !dump.dump_done(); i++) {
    if (Status s = dump.Wait(100); !s.ok()) return s;
  }
  return dump.dump_done() ? Status::Ok() : Status::Error("interface dump did not finish in 5 s");
}

std::vector<AttachmentHealth> CheckAttachments(const std::vector<Attachment>& known,
                                               const std::vector<LinkEvent>& links) {
  std::vector<AttachmentHealth> out;
  for (const auto& a : known) {
    AttachmentHealth h{a.ifname, a.ifindex, a.role, false, ""};
    TcxQueryResult q;
    if (Status s = QueryTcxIngress(a.ifindex, &q); !s.ok()) {
      h.error = "cannot query tcx ingress: " + s.message();
    } else if (std::find(q.link_ids.begin(), q.link_ids.end(), a.link_id) == q.link_ids.end()) {
      h.error = "capture program detached: link " + std::to_string(a.link_id) + " is not at tcx ingress of ifindex " +
                std::to_string(a.ifindex);
    } else {
      h.attached = true;
    }
    out.push_back(std::move(h));
  }
  for (const auto& l : links) {
    if (l.kind != "veth") continue;
    bool found = std::any_of(known.begin(), known.end(), [&](const Attachment& a) { return a.ifname == l.name; });
    if (!found) out.push_back({l.name, l.ifindex, IfaceRole::kPodVeth, false, "veth has no capture program"});
  }
  return out;
}

}  // namespace zm::agent::bpf
