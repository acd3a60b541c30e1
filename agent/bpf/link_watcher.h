// LinkWatcher: reports network interfaces of the current netns as they appear and disappear (rtnetlink RTMGRP_LINK),
// so the agent can attach to a new pod veth before the pod's application runs.
//
// Usage: Start() opens the socket in the calling thread's netns and requests a dump of the existing links. Then
// either add fd() to an epoll loop (EPOLLIN) and call ProcessPending() when it is readable, or call Wait(timeout)
// from a dedicated thread. The callback runs on the thread that calls ProcessPending/Wait.
// kAdded is reported for the dump, for new links and for every later change (rename, up/down): handlers must be
// idempotent. After a receive-queue overflow (ENOBUFS) the watcher re-dumps by itself, so no link is missed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/bpf/netlink.h"
#include "agent/bpf/status.h"

namespace zm::agent::bpf {

struct LinkEvent {
  enum class Type { kAdded, kRemoved };
  Type type = Type::kAdded;
  uint32_t ifindex = 0;
  std::string name;
  std::string kind;        // IFLA_INFO_KIND: "veth", "bridge", "dummy"...; "" for physical NICs and lo
  uint8_t oper_state = 0;  // IF_OPER_* (6 = up)
  bool admin_up = false;   // IFF_UP
};

class LinkWatcher {
 public:
  using Callback = std::function<void(const LinkEvent&)>;
  explicit LinkWatcher(Callback cb) : cb_(std::move(cb)) {}

  Status Start();
  int fd() const { return nl_.fd(); }
  // Drains everything queued without blocking and runs the callback for each event.
  Status ProcessPending();
  // Waits up to timeout_ms for events (poll), then ProcessPending(). Returns Ok on timeout too.
  Status Wait(int timeout_ms);
  bool dump_done() const { return !dumping_; }  // the initial (or recovery) dump has been fully reported

 private:
  Status RequestDump();
  void Handle(const nlmsghdr* h);

  static constexpr size_t kRecvBuffer = 65536;

  Callback cb_;
  NetlinkSocket nl_;
  // The receive buffer, allocated on first use. Not a static thread_local: glibc zero-fills a thread's static TLS
  // when the thread starts, so 64 KiB there was resident in each of the agent's ~13 threads (~0.8 MB).
  std::unique_ptr<char[]> buf_;
  uint32_t dump_seq_ = 0;
  bool dumping_ = false;
  bool redump_ = false;
};

}  // namespace zm::agent::bpf
