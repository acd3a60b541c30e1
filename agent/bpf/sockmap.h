// Sockmap: node-local sk_msg redirection between enrolled pods' sockets and the proxy's (bpf/sockmap.bpf.c,
// docs/design.md "sockmap"). Loaded beside the capture program, in the same pin directory (it shares zm_pods and
// zm_pods6, so BpfManager::Init must have run first): its maps are pinned, the sock_ops program is attached to a cgroup
// holding the pods through a pinned link (BPF_F_ALLOW_MULTI semantics: other programs of that cgroup keep running),
// and the sk_msg verdict to the zm_socks SOCKHASH.
//
// Pods' sockets enter the map from the kernel when they are established; the proxy adds its own sockets with
// AddProxySocket, only for connections it reads and writes itself (never a splice relay, which cannot see redirected
// bytes). Anything not in the map, or not redirectable at the moment, is plain TCP: turning it off, or an agent
// restart, only means fewer redirects. Thread-safe after Init (map operations are syscalls on fixed fds).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/bpf/status.h"

struct sockmap_bpf;  // bpftool skeleton (sockmap.skel.h)

namespace zm::agent::bpf {

enum class SockmapMode { kOff, kFromPod, kBoth };
inline constexpr uint32_t kSockmapDefaultMaxUnread = 1u << 20;  // ZM_SOCKMAP_DEFAULT_MAX_UNREAD
// "off", "from-pod" (pod -> proxy only: the proxy is the reader), "both" (also proxy -> pod; a pod app that reads
// with splice() would not see redirected bytes). False for anything else.
bool ParseSockmapMode(std::string_view s, SockmapMode* out);
const char* SockmapModeName(SockmapMode m);

struct SockmapStats {  // sums over CPUs since the pinned map was created
  uint64_t redirected_bytes = 0;
  uint64_t redirected_msgs = 0;
  uint64_t passed_no_peer = 0;
  uint64_t passed_backpressure = 0;
  uint64_t passed_tcp_pending = 0;
  uint64_t demoted_to_pod = 0;
  uint64_t sockets_added = 0;  // pod sockets, by the sock_ops program
  uint64_t add_errors = 0;
};

class Sockmap {
 public:
  Sockmap() = default;
  ~Sockmap();  // closes fds; pins (maps, the cgroup link) stay
  Sockmap(const Sockmap&) = delete;
  Sockmap& operator=(const Sockmap&) = delete;

  // pin_dir: the capture program's (BpfManager::PinDir()). cgroup: a cgroup v2 directory holding the pods (never the
  // root cgroup: refused). max_unread: bytes a reader may have queued before its writer falls back to TCP.
  Status Init(const std::string& pin_dir, const std::string& cgroup, SockmapMode mode, uint32_t max_unread);
  // The mode is off: detaches a sock_ops link an earlier agent pinned and tells the programs still running on
  // sockets already in the map to stop redirecting. No pins: Ok.
  static Status Disable(const std::string& pin_dir);

  // A connected TCP socket of the proxy in the node netns whose peer is a local pod. Errors (map full, closed socket)
  // are counted, never fatal: the connection is plain TCP then.
  Status AddProxySocket(int fd);
  bool ready() const { return skel_ != nullptr; }
  Status Stats(SockmapStats* out) const;
  uint64_t proxy_add_errors() const { return proxy_add_errors_.load(std::memory_order_relaxed); }

 private:
  sockmap_bpf* skel_ = nullptr;
  int link_fd_ = -1;
  std::atomic<uint64_t> proxy_add_errors_{0};
};

}  // namespace zm::agent::bpf
