#include "agent/node/node_agent.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "agent/bpf/cgroup_detect.h"
#include "agent/bpf/conntrack_bypass.h"
#include "agent/bpf/host_routes.h"
#include "agent/bpf/policy_routing.h"
#include "agent/bpf/uplinks.h"
#include "common/log.h"

namespace zm::agent {

namespace {

bpf::PodMode ToBpfMode(MeshMode m) {
  return m == MeshMode::kStrict ? bpf::PodMode::kStrict : bpf::PodMode::kPermissive;
}

// Every address of a sandbox (the runtime lists both families in ips; older runtimes only the IPv4 in ip).
std::vector<net::IpAddr> SandboxIps(const runtime::Sandbox& sb) {
  if (!sb.ips.empty()) return sb.ips;
  auto ip = net::IpAddr::Parse(sb.ip);
  return ip ? std::vector<net::IpAddr>{*ip} : std::vector<net::IpAddr>{};
}

bool DirExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

NodeAgent::NodeAgent(NodeAgentOptions opts, SnapshotHolder& snapshots, CertStore& certs)
    : opts_(std::move(opts)), snapshots_(snapshots), certs_(certs) {}

NodeAgent::~NodeAgent() {
  Stop();
}

bool NodeAgent::Start(std::string* error) {
  reused_pins_ = DirExists(std::string(bpf::kDefaultPinRoot) + "/" + opts_.agent_id + "/maps") ||
                 DirExists(std::string(bpf::kDefaultPinRoot) + "/" + opts_.agent_id);
  if (auto st = bpf_.Init(opts_.agent_id, bpf::kDefaultPinRoot, opts_.attach_mode, opts_.tc_priority); !st.ok()) {
    *error = "loading the BPF capture program: " + st.message();
    return false;
  }
  log::Info(reused_pins_ ? "reused pinned maps" : "created pinned maps", {{"pin_dir", bpf_.PinDir()}});
  std::string sockops_cgroup = opts_.sockops_cgroup;
  bpf::SockmapMode sockmap_mode = opts_.sockmap;
  if (sockmap_mode != bpf::SockmapMode::kOff && sockops_cgroup == bpf::kSockopsCgroupAuto) {
    // Not finding the pods' cgroup is the node's shape, not a fault: the mesh runs without redirection
    // (zeromesh_sockmap_requested 1, zeromesh_sockmap_enabled 0). A wrong explicit path stays fatal below.
    if (auto st = bpf::DetectPodCgroup(&sockops_cgroup); !st.ok()) {
      log::Warn("sockmap off: --sockops-cgroup auto found no pod cgroup, running without sk_msg redirection",
                {{"error", st.message()}});
      sockmap_mode = bpf::SockmapMode::kOff;
    } else {
      log::Info("sockmap: found the pods' cgroup", {{"cgroup", sockops_cgroup}});
    }
  }
  if (sockmap_mode == bpf::SockmapMode::kOff) {
    if (auto st = bpf::Sockmap::Disable(bpf_.PinDir()); !st.ok()) log::Warn("sockmap off", {{"error", st.message()}});
  } else if (auto st = sockmap_.Init(bpf_.PinDir(), sockops_cgroup, sockmap_mode, opts_.sockmap_max_unread); !st.ok()) {
    *error = "loading the sockmap programs (--sockmap " + std::string(bpf::SockmapModeName(opts_.sockmap)) +
             "): " + st.message();
    return false;
  }
  if (auto st = bpf::PolicyRouting::Ensure(); !st.ok()) {
    *error = "policy routing for captured traffic: " + st.message();
    return false;
  }
  // IPv6 capture needs the IPv6 twin of the route. A node without IPv6 runs IPv4-only: without the route, no IPv6
  // listener goes into the SOCKMAP, so STRICT pods' IPv6 fails closed and PERMISSIVE pods' goes direct.
  if (auto st = bpf::PolicyRouting::Ensure({}, AF_INET6); st.ok()) {
    ipv6_routing_ = true;
  } else {
    log::Warn("no IPv6 policy routing: IPv6 is not captured on this node", {{"error", st.message()}});
  }
  if (auto st = bpf::ConntrackBypass::Ensure(); !st.ok()) {
    *error = "conntrack bypass for captured traffic (nftables table zeromesh): " + st.message();
    return false;
  }
  // Pods first, listeners second: a captured SYN must never meet a listener that does not know its pod yet.
  ApplySnapshot();
  subscription_ = snapshots_.Subscribe([this] {
    ApplySnapshot();
    RefreshUplinks();  // remote workloads tell which routes lead to other nodes' pods
  });
  RefreshUplinks();
  if (!opts_.cri_socket.empty()) {
    sandboxes_watcher_ = std::make_unique<runtime::SandboxWatcher>(
        opts_.cri_socket, [this](const std::vector<runtime::Sandbox>& s) { OnSandboxes(s); });
    sandboxes_watcher_->Start();
  }

  proxy::ProxyOptions popts = opts_.proxy;
  popts.workers = opts_.workers;
  popts.authorize = opts_.authorize;
  popts.observer = opts_.observer;
  popts.socket_mark = ZM_MARK_PROXY;
  if (sockmap_.ready()) {
    popts.accelerate = [this](int fd) {
      if (auto st = sockmap_.AddProxySocket(fd); !st.ok()) log::Debug("sockmap", {{"error", st.message()}});
    };
  }
  // bpf_sk_assign delivers captured SYNs to a listener whatever address it is bound to: bound to loopback, the proxy
  // ports answer nothing that was not captured (a pod or another host dialling the node's address gets a reset).
  popts.listen_addr = net::IpAddr::V4(htonl(INADDR_LOOPBACK));
  popts.listen_addr6 = net::IpAddr::V6(in6addr_loopback);
  proxy_ = std::make_unique<proxy::NodeProxy>(popts, snapshots_, certs_);
  if (!proxy_->Start(error)) {
    *error = "starting the node proxy: " + *error;
    return false;
  }
  if (!InstallListeners(error)) return false;
  links_ = std::make_unique<bpf::LinkWatcher>([this](const bpf::LinkEvent& ev) { OnLink(ev); });
  if (auto st = links_->Start(); !st.ok()) {
    *error = "watching network interfaces: " + st.message();
    return false;
  }
  return true;
}

void NodeAgent::OnLinkEvents() {
  if (!links_) return;
  if (auto st = links_->ProcessPending(); !st.ok()) log::Warn("link watcher", {{"error", st.message()}});
}

void NodeAgent::CheckTcxChain() {
  (void)bpf_.RepairTcxPositions();  // each repair is logged ("tcx position repaired") and counted
  RefreshUplinks();
}

std::set<std::string> NodeAgent::uplinks() const {
  std::lock_guard lock(uplink_mu_);
  return uplinks_;
}

bool NodeAgent::IsUplink(const std::string& ifname) const {
  std::lock_guard lock(uplink_mu_);
  return uplinks_.count(ifname) > 0;
}

void NodeAgent::RefreshUplinks() {
  std::lock_guard lock(uplink_mu_);
  std::set<std::string> want;
  if (!opts_.uplink.empty()) {
    want = {opts_.uplink};
  } else {
    std::string routes = bpf::ReadProcNetRoute();
    auto snap = snapshots_.Get();
    if (routes == uplink_routes_ && snap == uplink_snapshot_ && !uplinks_.empty()) return;
    uplink_routes_ = std::move(routes);
    uplink_snapshot_ = snap;
    std::vector<uint32_t> remote;
    if (snap) {
      for (const auto& w : snap->workloads()) {
        if (snap->IsLocal(w)) continue;
        for (const auto& ip : w.ips) {
          if (ip.is_v4()) remote.push_back(ip.v4());
        }
      }
    }
    want = bpf::FindUplinks(bpf::ParseIpv4Routes(uplink_routes_), remote);
    // An uplink stays one while its interface exists: hooking one that no longer carries pods costs nothing (the
    // program acts on traffic to local pods only), and a veth uplink dropped here would come back as a pod veth.
    for (const auto& name : uplinks_) {
      if (if_nametoindex(name.c_str()) != 0) want.insert(name);
    }
  }
  if (want == uplinks_) return;
  for (const auto& name : want) {
    if (uplinks_.count(name)) continue;
    const unsigned ifindex = if_nametoindex(name.c_str());
    if (ifindex == 0) continue;  // not there yet: its link event attaches it (IsUplink)
    if (auto st = bpf_.Attach(ifindex, name, bpf::IfaceRole::kUplink); !st.ok()) {
      log::Error("attach failed", {{"ifname", name}, {"ifindex", ifindex}, {"error", st.message()}});
      continue;
    }
    log::Info("uplink attached", {{"ifname", name}, {"ifindex", ifindex}, {"found", opts_.uplink.empty()}});
  }
  uplinks_ = std::move(want);
}

void NodeAgent::OnLink(const bpf::LinkEvent& ev) {
  const bool uplink = IsUplink(ev.name);
  if (!uplink && ev.kind != "veth") return;  // pod veths and the uplinks only; never lo, bridges, other tunnels
  // A veth with a subnet route is a wire of the node (not an uplink: it carries no other node's pods), not a pod's.
  if (!uplink && ev.type == bpf::LinkEvent::Type::kAdded &&
      bpf::NetworkInterfaces(bpf::ParseIpv4Routes(bpf::ReadProcNetRoute())).count(ev.name)) {
    return;
  }
  if (ev.type == bpf::LinkEvent::Type::kRemoved) {
    if (auto st = bpf_.Detach(ev.name); !st.ok()) {
      log::Warn("detach failed", {{"ifname", ev.name}, {"error", st.message()}});
    } else {
      log::Info("detached", {{"ifname", ev.name}});
    }
    return;
  }
  auto role = uplink ? bpf::IfaceRole::kUplink : bpf::IfaceRole::kPodVeth;
  if (auto st = bpf_.Attach(ev.ifindex, ev.name, role); !st.ok()) {
    log::Error("attach failed", {{"ifname", ev.name}, {"ifindex", ev.ifindex}, {"error", st.message()}});
    return;
  }
  log::Debug("attached", {{"ifname", ev.name}, {"ifindex", ev.ifindex}, {"role", uplink ? "uplink" : "pod"}});
  if (!uplink && sandboxes_watcher_) sandboxes_watcher_->Kick();  // a pod is starting: learn its namespace now
}

void NodeAgent::OnSandboxes(const std::vector<runtime::Sandbox>& sandboxes) {
  {
    std::lock_guard lock(apply_mu_);
    sandboxes_ = sandboxes;
  }
  ApplySnapshot();
}

void NodeAgent::ApplyRuntimeWithoutConfig() {
  // No configuration yet: a restarted agent whose controller is not reachable. The pinned pod map still holds what
  // the previous agent knew, and the runtime maps those IPs to namespaces, so known pods tell their namespaces'
  // enrollment (enrolled wins on a conflict: fail closed). New pods of a namespace known to be outside the mesh go
  // direct; nothing pinned is removed (nothing says it is stale).
  std::vector<bpf::PodEntry> pinned;
  if (sandboxes_.empty() || !bpf_.ListPods(&pinned).ok()) return;
  std::map<net::IpAddr, bpf::PodState> known;
  for (const auto& e : pinned) known[e.ip] = e.state;
  std::map<std::string, bool> ns_enrolled;
  for (const auto& sb : sandboxes_) {
    if (sb.labels.count("zeromesh.io/mesh")) continue;
    for (const auto& ip : SandboxIps(sb)) {
      if (auto it = known.find(ip); it != known.end()) {
        ns_enrolled[sb.namespace_name] |= it->second == bpf::PodState::kEnrolled;
      }
    }
  }
  size_t direct = 0;
  for (const auto& sb : sandboxes_) {
    auto label = sb.labels.find("zeromesh.io/mesh");
    auto ns = ns_enrolled.find(sb.namespace_name);
    bool outside = label != sb.labels.end() ? label->second != "enabled" : ns != ns_enrolled.end() && !ns->second;
    if (!outside) continue;
    for (const auto& ip : SandboxIps(sb)) {
      if (!known.count(ip) && bpf_.UpsertPod(ip, bpf::PodState::kNotEnrolled, bpf::PodMode::kStrict).ok()) ++direct;
    }
  }
  if (direct) log::Info("pods outside the mesh go direct (no configuration yet)", {{"runtime_direct", direct}});
}

void NodeAgent::ApplySnapshot() {
  auto snap = snapshots_.Get();
  std::lock_guard lock(apply_mu_);
  if (!snap) {
    ApplyRuntimeWithoutConfig();
    return;
  }
  std::set<net::IpAddr> wanted;  // every local pod address, both families
  std::vector<bpf::ProbePort> probes;
  size_t enrolled = 0, local = 0;
  // Namespace enrollment as the controller decided it for pods without their own label.
  std::map<std::string, bool> ns_enrolled;
  for (const auto& w : snap->workloads()) {
    if (w.mesh_label.empty()) ns_enrolled[w.ns] = w.enrolled;
  }
  for (const auto& w : snap->workloads()) {
    if (!snap->IsLocal(w)) continue;
    auto state = w.enrolled ? bpf::PodState::kEnrolled : bpf::PodState::kNotEnrolled;
    for (const auto& ip : w.ips) {  // zm_pods or zm_pods6 by the address's family
      wanted.insert(ip);
      if (auto st = bpf_.UpsertPod(ip, state, ToBpfMode(w.mode)); !st.ok()) {
        log::Error("programming pod", {{"pod", w.name}, {"error", st.message()}});
      }
      if (w.enrolled && w.mode == MeshMode::kStrict) {
        for (uint16_t p : w.probe_ports) probes.push_back({ip, p});
      }
    }
    enrolled += w.enrolled ? 1 : 0;
    ++local;
  }
  // The kubelet's probe ports: the only way in from the node's own netns to a STRICT pod (capture.bpf.c egress guard).
  if (auto st = bpf_.SetProbePorts(probes); !st.ok()) log::Error("programming probe ports", {{"error", st.message()}});
  // Which veth leads to which local pod (its host routes, either family), so that a STRICT pod's IPv6 from or to an
  // address the agent does not know is refused from its first packet.
  const auto routes = bpf::HostRouteInterfaces();
  for (const auto& w : snap->workloads()) {
    if (!snap->IsLocal(w)) continue;
    for (const auto& ip : w.ips) {
      if (auto r = routes.find(ip); r != routes.end()) (void)bpf_.SetVethPod(r->second, ip);
    }
  }
  (void)bpf_.SetStrictUdpAllowed(snap->strict_udp_allowed());
  std::vector<net::Cidr> excluded;  // either family
  for (const auto& text : snap->exclude_cidrs()) {
    if (auto c = net::Cidr::Parse(text)) excluded.push_back(*c);
  }
  if (auto st = bpf_.SetExcludedCidrs(excluded); !st.ok()) {
    log::Error("programming excluded CIDRs", {{"error", st.message()}});
  }
  // Pods the runtime has and the controller has not reported yet (docs/design.md "New pods: who is held"): one
  // outside the mesh goes direct from its first packet; an enrolled one, or one of a namespace the agent knows
  // nothing of, stays unknown (captured and held in STRICT) until the controller reports it.
  size_t direct = 0;
  for (const auto& sb : sandboxes_) {
    const auto ips = SandboxIps(sb);
    if (ips.empty() || std::any_of(ips.begin(), ips.end(), [&](const net::IpAddr& ip) { return snap->Find(ip); })) {
      continue;  // the controller reported it (by any of its addresses): the snapshot decides
    }
    bool outside;
    if (auto it = sb.labels.find("zeromesh.io/mesh"); it != sb.labels.end()) {
      outside = it->second != "enabled";
    } else {
      auto ns = ns_enrolled.find(sb.namespace_name);
      if (ns == ns_enrolled.end()) continue;
      outside = !ns->second;
    }
    if (!outside) continue;
    for (const auto& ip : ips) {
      wanted.insert(ip);
      if (auto st = bpf_.UpsertPod(ip, bpf::PodState::kNotEnrolled, ToBpfMode(snap->default_mode())); !st.ok()) {
        log::Error("programming pod", {{"pod", sb.namespace_name + "/" + sb.name}, {"error", st.message()}});
      }
    }
    ++direct;
  }
  std::vector<bpf::PodEntry> existing;
  if (bpf_.ListPods(&existing).ok()) {
    for (const auto& e : existing) {
      if (!wanted.count(e.ip)) (void)bpf_.RemovePod(e.ip);
    }
  }
  // STRICT mesh: a pod the agent does not know yet is captured and held, never let out in plaintext.
  (void)bpf_.SetCaptureUnknown(snap->default_mode() == MeshMode::kStrict);
  snapshots_applied_.fetch_add(1, std::memory_order_relaxed);
  log::Info("config applied", {{"local_pods", local + direct},
                               {"pod_addresses", wanted.size()},
                               {"enrolled", enrolled},
                               {"runtime_direct", direct}});
}

bool NodeAgent::Uninstall(std::string* error) {
  std::string problems;
  if (links_) links_.reset();  // no re-attach from a late link event
  if (auto st = bpf_.Destroy(); !st.ok()) problems += "bpf: " + st.message() + "; ";
  for (int family : {AF_INET, AF_INET6}) {
    if (auto st = bpf::PolicyRouting::Remove({}, family); !st.ok()) {
      problems += "policy routing: " + st.message() + "; ";
    }
  }
  if (auto st = bpf::ConntrackBypass::Remove(); !st.ok()) problems += "conntrack bypass: " + st.message() + "; ";
  if (problems.empty()) return true;
  *error = problems.substr(0, problems.size() - 2);
  return false;
}

bool NodeAgent::ipv6_capture() const {
  return ipv6_routing_ && proxy_ && proxy_->outbound6_fd() >= 0 && proxy_->hbone6_fd() >= 0 &&
         proxy_->plaintext6_fd() >= 0;
}

bool NodeAgent::InstallListeners(std::string* error) {
  const std::pair<bpf::ListenerSlot, int> slots[] = {{bpf::ListenerSlot::kOutbound, proxy_->outbound_fd()},
                                                     {bpf::ListenerSlot::kHbone, proxy_->hbone_fd()},
                                                     {bpf::ListenerSlot::kPlaintext, proxy_->plaintext_fd()}};
  for (const auto& [slot, fd] : slots) {
    if (auto st = bpf_.SetListener(slot, fd); !st.ok()) {
      *error = "putting the proxy listener into the SOCKMAP: " + st.message();
      return false;
    }
  }
  // The IPv6 listeners go into zm_listeners6 (SetListener picks the map by the socket's family) when the node
  // captures IPv6; the proxy has none on a node without IPv6.
  if (!ipv6_capture()) return true;
  const std::pair<bpf::ListenerSlot, int> slots6[] = {{bpf::ListenerSlot::kOutbound, proxy_->outbound6_fd()},
                                                      {bpf::ListenerSlot::kHbone, proxy_->hbone6_fd()},
                                                      {bpf::ListenerSlot::kPlaintext, proxy_->plaintext6_fd()}};
  for (const auto& [slot, fd] : slots6) {
    if (auto st = bpf_.SetListener(slot, fd); !st.ok()) {
      *error = "putting the proxy's IPv6 listener into the SOCKMAP: " + st.message();
      return false;
    }
  }
  return true;
}

void NodeAgent::StopAccepting() {
  for (int family : {AF_INET, AF_INET6}) {
    for (auto slot : {bpf::ListenerSlot::kOutbound, bpf::ListenerSlot::kHbone, bpf::ListenerSlot::kPlaintext}) {
      if (auto st = bpf_.ClearListener(slot, family); !st.ok()) {
        log::Warn("clearing a listener", {{"error", st.message()}});
      }
    }
  }
  if (proxy_) proxy_->Drain();
}

void NodeAgent::Stop() {
  sandboxes_watcher_.reset();
  if (subscription_) {
    snapshots_.Unsubscribe(subscription_);
    subscription_ = 0;
  }
  if (proxy_) proxy_->Stop();
}

}  // namespace zm::agent
