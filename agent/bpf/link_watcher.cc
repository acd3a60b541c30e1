#include "agent/bpf/link_watcher.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>

#include "common/log.h"

namespace zm::agent::bpf {

Status LinkWatcher::Start() {
  if (Status s = nl_.Open(RTMGRP_LINK, /*nonblocking=*/true); !s.ok()) return s;
  return RequestDump();
}

Status LinkWatcher::RequestDump() {
  NlRequest req(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  req.SetFamilyHeader(ifi);
  dump_seq_ = nl_.NextSeq();
  if (Status s = nl_.Send(req, dump_seq_); !s.ok()) return s;
  dumping_ = true;
  redump_ = false;
  return Status::Ok();
}

void LinkWatcher::Handle(const nlmsghdr* h) {
  if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) return;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
  const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
  std::array<const rtattr*, IFLA_MAX + 1> tb{};
  ParseAttrs(IFLA_RTA(ifi), static_cast<int>(IFLA_PAYLOAD(h)), tb);

  LinkEvent ev;
  ev.type = h->nlmsg_type == RTM_NEWLINK ? LinkEvent::Type::kAdded : LinkEvent::Type::kRemoved;
  ev.ifindex = static_cast<uint32_t>(ifi->ifi_index);
  ev.name = AttrString(tb[IFLA_IFNAME]);
  ev.admin_up = (ifi->ifi_flags & IFF_UP) != 0;
  if (tb[IFLA_OPERSTATE]) ev.oper_state = *static_cast<const uint8_t*>(RTA_DATA(tb[IFLA_OPERSTATE]));
  if (tb[IFLA_LINKINFO]) {
    std::array<const rtattr*, IFLA_INFO_MAX + 1> info{};
    ParseAttrs(static_cast<const rtattr*>(RTA_DATA(tb[IFLA_LINKINFO])),
               static_cast<int>(RTA_PAYLOAD(tb[IFLA_LINKINFO])), info);
    ev.kind = AttrString(info[IFLA_INFO_KIND]);
  }
  cb_(ev);
}

Status LinkWatcher::ProcessPending() {
  if (nl_.fd() < 0) return Status::Error("link watcher not started");
  if (!buf_) buf_ = std::make_unique_for_overwrite<char[]>(kRecvBuffer);  // new[]: aligned for nlmsghdr
  char* buf = buf_.get();
  for (;;) {
    ssize_t n = recv(nl_.fd(), buf, kRecvBuffer, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();
      if (errno == ENOBUFS) {
        // Events were lost: re-read the full list (after the running dump, if any; netlink allows one at a time).
        zm::log::Warn("link watcher overflow, re-dumping links");
        if (dumping_) {
          redump_ = true;
          continue;
        }
        if (Status s = RequestDump(); !s.ok()) return s;
        continue;
      }
      return Status::Errno("link watcher recv", errno);
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
        if (dumping_ && h->nlmsg_seq == dump_seq_) {
          dumping_ = false;
          if (h->nlmsg_type == NLMSG_ERROR) {
            int err = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
            if (err != 0) zm::log::Warn("link dump failed, retrying", {{"errno", -err}});
            if (err != 0) redump_ = true;
          }
          if (redump_) {
            if (Status s = RequestDump(); !s.ok()) return s;
          }
        }
        continue;
      }
      Handle(h);
    }
  }
}

Status LinkWatcher::Wait(int timeout_ms) {
  if (nl_.fd() < 0) return Status::Error("link watcher not started");
  pollfd p{nl_.fd(), POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r < 0 && errno != EINTR) return Status::Errno("poll link watcher", errno);
  return ProcessPending();
}

}  // namespace zm::agent::bpf
