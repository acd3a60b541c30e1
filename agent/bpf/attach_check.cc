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
    AttachmentHealth h{a.ifname, a.ifindex, a.role, false, "", -1, a.repairs, a.last_repair_unix, a.last_repair, a.tc};
    if (a.tc) {  // tc mode: Attachments() asked the kernel for the program our filter runs
      h.attached = a.prog_id != 0;
      h.position = h.attached ? 0 : -1;
      if (!h.attached) h.error = "capture filter removed from tc ingress of ifindex " + std::to_string(a.ifindex);
      out.push_back(std::move(h));
      continue;
    }
    TcxQueryResult q;
    if (Status s = QueryTcxIngress(a.ifindex, &q); !s.ok()) {
      h.error = "cannot query tcx ingress: " + s.message();
    } else if (auto it = std::find(q.link_ids.begin(), q.link_ids.end(), a.link_id); it == q.link_ids.end()) {
      h.error = "capture program detached: link " + std::to_string(a.link_id) + " is not at tcx ingress of ifindex " +
                std::to_string(a.ifindex);
    } else {
      h.attached = true;
      h.position = static_cast<int>(it - q.link_ids.begin());
    }
    out.push_back(std::move(h));
  }
  for (const auto& l : links) {
    if (l.kind != "veth") continue;
    bool found = std::any_of(known.begin(), known.end(), [&](const Attachment& a) { return a.ifname == l.name; });
    if (!found) {
      AttachmentHealth h;
      h.ifname = l.name;
      h.ifindex = l.ifindex;
      h.error = "veth has no capture program";
      out.push_back(std::move(h));
    }
  }
  return out;
}

}  // namespace zm::agent::bpf
