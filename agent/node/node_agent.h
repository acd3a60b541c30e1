// NodeAgent ties the agent's parts together inside the node's network namespace:
//   BPF manager (pinned capture program + maps)  <- programmed from the current MeshSnapshot
//   link watcher (rtnetlink)                     -> attaches the program to every pod veth and the uplinks
//   routing table + remote workloads             -> which interfaces are uplinks (agent/bpf/uplinks.h)
//   node proxy                                   -> its listeners go into the BPF SOCKMAP
// The snapshot and certificates come from a config source (the local file today, the controller later).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/bpf/bpf_manager.h"
#include "agent/bpf/link_watcher.h"
#include "agent/bpf/sockmap.h"
#include "agent/proxy/node_proxy.h"
#include "agent/runtime/sandbox_watcher.h"
#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::agent {

struct NodeAgentOptions {
  std::string node;
  std::string agent_id;  // pins live in /sys/fs/bpf/zeromesh/<agent_id>
  std::string uplink;    // empty: found from the routing table (agent/bpf/uplinks.h); a name: that interface only
  int workers = 0;
  // The proxy's bounds and timeouts (ProxyOptions' defaults unless flags change them); the agent sets the listeners,
  // workers, policy and observer itself.
  proxy::ProxyOptions proxy;
  proxy::Authorizer authorize;                    // L4 policy (empty: allow all, as with a local config file)
  std::shared_ptr<proxy::ConnObserver> observer;  // per-connection metrics + access log (optional)
  // The node's CRI socket (e.g. /run/containerd/containerd.sock); empty: new pods are known only from the controller.
  std::string cri_socket;
  // tcx links, or cls_bpf filters on clsact for kernels without tcx; kAuto asks the kernel (agent/bpf/attach_mode.h).
  bpf::AttachMode attach_mode = bpf::AttachMode::kAuto;
  uint32_t tc_priority = bpf::kTcDefaultPriority;  // our filters' tc priority in tc mode
  // Node-local sk_msg redirection between pods and the proxy (agent/bpf/sockmap.h); its sock_ops program goes on
  // sockops_cgroup, a cgroup v2 directory holding the pods (required unless off), or "auto": the kubelet's pod cgroup
  // (agent/bpf/cgroup_detect.h); none found: a warning and no redirection.
  bpf::SockmapMode sockmap = bpf::SockmapMode::kOff;
  std::string sockops_cgroup;
  uint32_t sockmap_max_unread = bpf::kSockmapDefaultMaxUnread;
};

class NodeAgent {
 public:
  NodeAgent(NodeAgentOptions opts, SnapshotHolder& snapshots, CertStore& certs);
  ~NodeAgent();

  // Loads (or adopts) the BPF objects, policy routing, starts the proxy and puts its listeners in the SOCKMAP, and
  // starts watching links. Fails with a specific message; nothing is left half-done in the maps on failure.
  bool Start(std::string* error);
  // Handles pending link events; call when link_fd() is readable.
  void OnLinkEvents();
  int link_fd() const { return links_ ? links_->fd() : -1; }
  bool links_synced() const { return links_ && links_->dump_done(); }
  // Puts our tcx links back first where another program got ahead of them or someone detached them, and re-evaluates
  // the uplinks (routes change without a link event): call it periodically, every kTcxCheckMs.
  void CheckTcxChain();
  std::set<std::string> uplinks() const;
  static constexpr int kTcxCheckMs = 2000;
  // Takes this agent's listeners out of the SOCKMAP: no new connection is steered to it (in STRICT a new SYN is
  // dropped and retransmitted into the next agent), while the ones it holds keep flowing until Stop(); peers are told
  // (HTTP/2 GOAWAY) to open their next HBONE streams on a new connection.
  void StopAccepting();
  // Stops the proxy. The pinned program and maps stay: enrolled pods keep failing closed until an agent returns.
  void Stop();
  // After Stop(), for an uninstall: detaches the program from every interface, removes the pins and the policy
  // routing, so nothing of the mesh stays on the node and every pod's traffic flows as without it.
  bool Uninstall(std::string* error);

  bool reused_pins() const { return reused_pins_; }
  // IPv6 is captured: its policy route is in place and the proxy has IPv6 listeners (false on a node without IPv6).
  // Its three listeners then belong in zm_listeners6 beside the three IPv4 ones.
  bool ipv6_capture() const;

  // For the admin endpoints and metrics (any thread).
  const bpf::BpfManager& bpf() const { return bpf_; }
  const bpf::Sockmap& sockmap() const { return sockmap_; }
  bool sockmap_requested() const { return opts_.sockmap != bpf::SockmapMode::kOff; }
  const proxy::ProxyStats* proxy_stats() const { return proxy_ ? &proxy_->stats() : nullptr; }
  traffic::Balancer* balancer() const { return proxy_ ? &proxy_->balancer() : nullptr; }
  const traffic::RateLimiter* limiter() const { return proxy_ ? &proxy_->limiter() : nullptr; }
  uint64_t snapshots_applied() const { return snapshots_applied_.load(std::memory_order_relaxed); }

 private:
  void OnLink(const bpf::LinkEvent& ev);
  bool IsUplink(const std::string& ifname) const;
  // Attaches newly found uplinks, detaches those that are no more. Any thread; cheap when nothing changed.
  void RefreshUplinks();
  void ApplySnapshot();  // BPF pod map + capture-unknown flag from the current snapshot and the runtime's sandboxes
  void OnSandboxes(const std::vector<runtime::Sandbox>& sandboxes);
  void ApplyRuntimeWithoutConfig();           // under apply_mu_
  bool InstallListeners(std::string* error);  // the proxy's listeners into the SOCKMAP

  NodeAgentOptions opts_;
  SnapshotHolder& snapshots_;
  CertStore& certs_;
  bpf::BpfManager bpf_;
  bpf::Sockmap sockmap_;
  std::unique_ptr<bpf::LinkWatcher> links_;
  std::unique_ptr<proxy::NodeProxy> proxy_;
  std::unique_ptr<runtime::SandboxWatcher> sandboxes_watcher_;
  std::mutex apply_mu_;                      // ApplySnapshot runs on the config thread and the sandbox watcher's
  std::vector<runtime::Sandbox> sandboxes_;  // under apply_mu_
  int subscription_ = 0;
  bool reused_pins_ = false;
  std::atomic<bool> ipv6_routing_{false};  // set by Start, read by the admin endpoints
  std::atomic<uint64_t> snapshots_applied_{0};
  mutable std::mutex uplink_mu_;
  std::set<std::string> uplinks_;                        // under uplink_mu_
  std::string uplink_routes_;                            // under uplink_mu_: /proc/net/route when last evaluated
  std::shared_ptr<const MeshSnapshot> uplink_snapshot_;  // under uplink_mu_: the snapshot then
};

}  // namespace zm::agent
