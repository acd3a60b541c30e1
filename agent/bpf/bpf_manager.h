// BpfManager: loads the capture program (bpf/capture.bpf.c), keeps its maps and per-interface tcx links pinned under
// <pin_root>/<agent_id>/ so they outlive the agent, and exposes the map operations the agent needs.
//
// Restart semantics: Init() reuses the pinned maps (pods, listeners, exclusions survive) and re-points every pinned
// link to the newly loaded program with bpf_link_update (no detach gap, never a second attachment). Pod veths carry
// two links: the capture program at tcx ingress (links/<ifname>) and the guard at tcx egress (links-egress/<ifname>).
// Pinned links whose interface is gone are unpinned. The destructor only closes fds: pins stay. Destroy() removes
// everything.
//
// Position in the tcx chain: every link is created first (BPF_F_BEFORE) and kept first by RepairTcxPositions, which
// the agent runs periodically (docs/design.md, "tcx chain").
//
// Kernels without tcx (AttachMode::kTc, chosen by Init's `auto` or forced): the same programs run as cls_bpf
// direct-action filters on clsact (tc_clsact.h). Filters belong to the kernel, so they survive a restart as pinned
// links do; Init finds them from the pinned zm_ifaces map and swaps in the new program in place (BPF_TC_F_REPLACE: no
// gap), migrates the tcx links an agent of the other mode left (the filter is added before the link goes), and
// RepairTcxPositions re-adds a filter someone removed. An agent in tcx mode removes our filters once its link is on.
//
// Interface indexes and names refer to the network namespace of the thread calling Init/Attach (the node netns).
// Thread-safe: every method takes an internal mutex. Nothing throws; failures come back as Status.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/bpf/attach_mode.h"
#include "agent/bpf/status.h"
#include "agent/bpf/tc_clsact.h"
#include "common/net/ip_addr.h"

struct capture_bpf;  // bpftool skeleton (capture.skel.h)

namespace zm::agent::bpf {

enum class IfaceRole : uint32_t { kPodVeth = 1, kUplink = 2 };
enum class PodState : uint8_t { kEnrolled = 1, kNotEnrolled = 2 };
enum class PodMode : uint8_t { kStrict = 1, kPermissive = 2 };
enum class ListenerSlot : uint32_t { kOutbound = 0, kHbone = 1, kPlaintext = 2 };

struct PodEntry {
  net::IpAddr ip;  // either family: IPv4 in zm_pods, IPv6 in zm_pods6
  PodState state = PodState::kEnrolled;
  PodMode mode = PodMode::kStrict;
};

struct CaptureStats {  // sums over CPUs since the maps were first created (they survive restarts)
  uint64_t captured_outbound = 0;
  uint64_t captured_hbone = 0;
  uint64_t captured_plaintext = 0;
  uint64_t assigned_established = 0;
  uint64_t dropped_fail_closed = 0;
  uint64_t assign_errors = 0;
  uint64_t passed_fail_open = 0;
  uint64_t dropped_orphan = 0;  // STRICT pod segments with no owning socket (proxy gone, pre-enrollment flows)
  // STRICT's guards (zm_guard_stats): what could not be meshed and was dropped, and the probes let through.
  uint64_t dropped_node_plaintext = 0;  // connections from the node's netns to a STRICT pod, not to a probe port
  uint64_t passed_probe = 0;            // connections from the node's netns to a declared probe port
  uint64_t dropped_fragment = 0;        // TCP fragments from or to STRICT pods
  uint64_t dropped_ipv6 = 0;  // IPv6 of STRICT pods not meshed: extension headers, or of a pod without a known IPv6
  uint64_t dropped_udp = 0;   // UDP of STRICT pods other than DNS (both families)
  // Not from a map: links of ours this manager re-attached first in their tcx chain (RepairTcxPositions).
  uint64_t attach_repairs = 0;
};

struct ProbePort {  // a port the node's own netns may reach on a STRICT pod
  net::IpAddr ip;   // either family
  uint16_t port = 0;
  ProbePort() = default;
  ProbePort(const net::IpAddr& pod_ip, uint16_t pod_port) : ip(pod_ip), port(pod_port) {}
  auto operator<=>(const ProbePort&) const = default;
};

struct Attachment {
  std::string ifname;
  uint32_t ifindex = 0;
  IfaceRole role = IfaceRole::kPodVeth;
  uint32_t link_id = 0;  // tcx; 0 in tc mode
  uint32_t prog_id = 0;  // program the link (or our tc filter) runs now, asked from the kernel; 0: none
  bool tc = false;       // a cls_bpf filter on clsact (tc mode), not a tcx link
  // Repairs of this interface's links by RepairTcxPositions (someone else detached or displaced them).
  uint32_t repairs = 0;
  int64_t last_repair_unix = 0;
  std::string last_repair;  // e.g. "ingress detached", "egress displaced behind prog 42"
};

inline constexpr std::string_view kDefaultPinRoot = "/sys/fs/bpf/zeromesh";

class BpfManager {
 public:
  BpfManager();
  ~BpfManager();
  BpfManager(const BpfManager&) = delete;
  BpfManager& operator=(const BpfManager&) = delete;

  // agent_id: [A-Za-z0-9._-]{1,64}. pin_root must be on a bpffs mount. An error means nothing is loaded (bad id,
  // no bpffs, verifier rejection, pinned maps of an incompatible build: Purge resets those). Pinned links that
  // cannot be adopted are logged and removed, not fatal: Attach re-creates them.
  // mode: kAuto picks tcx where the kernel has it, else tc; tc_priority: our filters' tc priority in tc mode.
  Status Init(std::string_view agent_id, std::string_view pin_root = kDefaultPinRoot,
              AttachMode mode = AttachMode::kAuto, uint32_t tc_priority = kTcDefaultPriority);
  AttachMode Mode() const;  // resolved: kTcx or kTc once Init succeeded

  // Idempotent: same name + ifindex already attached -> only the role is (re)written. Same name, other ifindex (the
  // interface was recreated) -> the old link is replaced. The role is in zm_ifaces before the program runs.
  Status Attach(uint32_t ifindex, std::string_view ifname, IfaceRole role);
  Status Detach(std::string_view ifname);  // not attached -> Ok

  // A TCP listening socket in the node netns: AF_INET (IP_TRANSPARENT) goes to zm_listeners, AF_INET6 (IPV6_V6ONLY,
  // IPV6_TRANSPARENT) to zm_listeners6; the socket's own family decides. |family| below: AF_INET or AF_INET6.
  Status SetListener(ListenerSlot slot, int fd);
  Status ClearListener(ListenerSlot slot, int family = AF_INET);  // empty slot -> Ok
  bool HasListener(ListenerSlot slot, int family = AF_INET) const;

  // Pods by address, either family (a dual-stack pod is one entry per address). An unset address is an error.
  Status UpsertPod(const net::IpAddr& ip, PodState state, PodMode mode);
  Status RemovePod(const net::IpAddr& ip);                       // unknown -> Ok
  Status LookupPod(const net::IpAddr& ip, PodEntry* out) const;  // not found -> error with code ENOENT
  Status ListPods(std::vector<PodEntry>* out) const;             // both families, for re-sync after a restart

  // Replace the whole set (entries not listed are removed; no window where a kept entry is missing).
  Status SetExcludedPorts(std::span<const uint16_t> ports);
  Status SetExcludedCidrs(std::span<const net::Cidr> cidrs);  // both families (zm_excl_cidrs, zm_excl_cidrs6)
  Status SetCaptureUnknown(bool on);
  Status SetStrictUdpAllowed(bool on);                     // false: STRICT pods send and receive DNS only over UDP
  Status SetProbePorts(std::span<const ProbePort> ports);  // both families
  // Which pod a veth leads to, by one of its addresses (zm_veth_pods for IPv4, zm_veth_pods6 for IPv6): for the
  // pod's IPv6 from or to addresses it does not know. The program also learns both from the pod's own traffic.
  Status SetVethPod(uint32_t ifindex, const net::IpAddr& ip);

  // Keeps every link of ours first in its tcx chain (ingress, and the egress guard of pod veths): a link another
  // program was attached ahead of (BPF_F_BEFORE), or that someone detached, is re-created first. Logged ("tcx position
  // repaired") and counted (CaptureStats::attach_repairs). Returns how many links were repaired. Also run by Init for
  // adopted links, which keep the position they had.
  int RepairTcxPositions();

  Status Stats(CaptureStats* out) const;
  std::vector<Attachment> Attachments() const;
  uint32_t ProgramId() const;
  std::string PinDir() const;

  // Detaches every link, unpins maps and links, removes <pin_root>/<agent_id>. The manager is unusable afterwards.
  Status Destroy();
  // Same cleanup without loading anything (uninstall, tests): also removes the tc filters (at tc_priority) of the
  // interfaces the pinned zm_ifaces map lists. Missing dir -> Ok.
  static Status Purge(std::string_view agent_id, std::string_view pin_root = kDefaultPinRoot,
                      uint32_t tc_priority = kTcDefaultPriority);

 private:
  struct Link {
    int fd = -1;
    uint32_t ifindex = 0;
    IfaceRole role = IfaceRole::kPodVeth;
    int egress_fd = -1;      // pod veths: the guard at tcx egress
    bool tc_egress = false;  // tc mode: the guard's filter is on (tc mode has no fds)
    uint32_t repairs = 0;
    int64_t last_repair_unix = 0;
    std::string last_repair;
  };

  bool HasEgress(const Link& l) const { return mode_ == AttachMode::kTc ? l.tc_egress : l.egress_fd >= 0; }
  Status AdoptPinnedLinks();
  // tc mode: Init's adoption (filters found through zm_ifaces) and migration from tcx pins; Attach's and
  // RepairTcxPositions' attach.
  void AdoptTcFilters();
  void MigrateTcxPinsToTc();
  Status AttachTcIngress(const std::string& ifname, uint32_t ifindex);
  int RepairTcFilters(const std::string& ifname, Link& link, std::string* what);
  Status EnsureEgress(const std::string& ifname, const std::string& old_pin_name, Link& link);
  void DropEgress(const std::string& ifname, Link& link);
  void PruneEgressPins();
  std::string EgressPin(std::string_view ifname) const;
  Status AdoptOne(const std::string& pin_name);
  void PruneIfaceRoles();
  void DropLink(const std::string& ifname, Link& link);  // detach + unpin + close + forget role
  std::string LinkPin(std::string_view ifname) const;
  Status ReplaceSet(int map_fd, const std::vector<std::vector<uint8_t>>& keys, size_t key_size, uint8_t value,
                    const char* what);
  Status SetCfgFlag(uint32_t flag, bool on);
  int ListenerMapFd(int family) const;  // -1 for a family without a map
  int RepairTcxPositionsLocked();
  bool RepairPosition(const std::string& ifname, uint32_t ifindex, int attach_type, int prog_fd, int twin_fd,
                      const std::string& pin, int* fd, std::string* what);
  bool Ready() const { return skel_ != nullptr; }

  mutable std::mutex mu_;
  capture_bpf* skel_ = nullptr;
  std::string dir_;
  uint32_t prog_id_ = 0;
  uint32_t guard_prog_id_ = 0;
  uint64_t attach_repairs_ = 0;
  AttachMode mode_ = AttachMode::kTcx;
  uint32_t tc_priority_ = kTcDefaultPriority;
  std::map<std::string, Link, std::less<>> links_;  // by ifname
};

}  // namespace zm::agent::bpf
