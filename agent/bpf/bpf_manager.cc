#include "agent/bpf/bpf_manager.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <set>

#include "agent/bpf/percpu_counters.h"
#include "agent/bpf/pin_dir.h"
#include "agent/bpf/tcx.h"
#include "bpf/capture_abi.h"
#include "capture.skel.h"
#include "common/log.h"

namespace zm::agent::bpf {
namespace {

// libbpf diagnostics (verifier log, pinned-map mismatches) go to our JSON log instead of raw stderr.
int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG || InExpectedTcError()) return 0;
  char buf[2048];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string msg(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  zm::log::Warn("libbpf", {{"detail", msg}});
  return n;
}

std::string CurrentIfName(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  return if_indextoname(ifindex, name) ? std::string(name) : std::string();
}

bool ValidIfName(std::string_view n) {
  return !n.empty() && n.size() < IF_NAMESIZE && n != "." && n != ".." && n.find('/') == std::string_view::npos;
}

template <typename T>
Status Update(int fd, const void* key, const T& value, const char* what) {
  if (bpf_map_update_elem(fd, key, &value, BPF_ANY) != 0) return Status::Errno(what, errno);
  return Status::Ok();
}

Status Delete(int fd, const void* key, const char* what) {
  if (bpf_map_delete_elem(fd, key) != 0 && errno != ENOENT) return Status::Errno(what, errno);
  return Status::Ok();
}

const Status kNotReady = Status::Error("BPF manager not initialized (call Init first)");
const Status kNoAddress = Status::Error("no pod address (neither IPv4 nor IPv6)");

zm_addr6 Addr6(const net::IpAddr& ip) {
  zm_addr6 a{};
  memcpy(a.addr, ip.bytes(), sizeof(a.addr));
  return a;
}

template <typename T>
std::vector<uint8_t> KeyBytes(const T& key) {
  const auto* b = reinterpret_cast<const uint8_t*>(&key);
  return std::vector<uint8_t>(b, b + sizeof(key));
}

// bpffs refuses names with a dot (EPERM), and interface names may have one (flannel.1, eth0.100): pins use ':' for
// it, which no interface name can contain.
std::string PinName(std::string_view ifname) {
  std::string out(ifname);
  std::replace(out.begin(), out.end(), '.', ':');
  return out;
}

std::string IfNameOfPin(std::string_view pin) {
  std::string out(pin);
  std::replace(out.begin(), out.end(), ':', '.');
  return out;
}

}  // namespace

BpfManager::BpfManager() = default;

BpfManager::~BpfManager() {
  std::lock_guard lock(mu_);
  for (auto& [name, link] : links_) {  // pinned links (and tc filters): stay attached
    if (link.fd >= 0) close(link.fd);
    if (link.egress_fd >= 0) close(link.egress_fd);
  }
  links_.clear();
  if (skel_) capture_bpf__destroy(skel_);
  skel_ = nullptr;
}

std::string BpfManager::LinkPin(std::string_view ifname) const {
  return dir_ + "/links/" + PinName(ifname);
}

std::string BpfManager::EgressPin(std::string_view ifname) const {
  return dir_ + "/links-egress/" + PinName(ifname);
}

Status BpfManager::Init(std::string_view agent_id, std::string_view pin_root, AttachMode mode, uint32_t tc_priority) {
  std::lock_guard lock(mu_);
  if (skel_) return Status::Error("BPF manager already initialized");
  if (!ValidAgentId(agent_id)) return Status::Error("invalid agent id '" + std::string(agent_id) + "'");
  static std::once_flag print_once;
  std::call_once(print_once, [] { libbpf_set_print(LibbpfPrint); });

  dir_ = std::string(pin_root) + "/" + std::string(agent_id);
  if (Status s = EnsureBpffsDir(dir_ + "/links"); !s.ok()) return s;
  if (Status s = EnsureBpffsDir(dir_ + "/links-egress"); !s.ok()) return s;

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = dir_.c_str());
  capture_bpf* skel = capture_bpf__open_opts(&opts);
  if (!skel) return Status::Errno("opening BPF object capture.bpf.o", errno);
  if (int err = capture_bpf__load(skel); err != 0) {
    capture_bpf__destroy(skel);
    return Status::Errno("loading capture program into the kernel (verifier rejection, or pinned maps in " + dir_ +
                             " incompatible with this build: see libbpf log; BpfManager::Purge resets them)",
                         err);
  }
  if (Status s = GetProgId(bpf_program__fd(skel->progs.zm_capture), &prog_id_); !s.ok()) {
    capture_bpf__destroy(skel);
    return s;
  }
  if (Status s = GetProgId(bpf_program__fd(skel->progs.zm_guard_egress), &guard_prog_id_); !s.ok()) {
    capture_bpf__destroy(skel);
    return s;
  }
  skel_ = skel;
  std::string why;
  mode_ = ResolveAttachMode(mode, &why);
  tc_priority_ = tc_priority;
  if (mode_ == AttachMode::kTc) {
    MigrateTcxPinsToTc();  // an agent in tcx mode ran here before: its interfaces get filters, then lose the links
    AdoptTcFilters();
  } else {
    // Adoption problems are logged per link and never make Init fail: affected pins are gone, Attach re-creates them.
    (void)AdoptPinnedLinks();
  }
  PruneEgressPins();
  PruneIfaceRoles();
  RepairTcxPositionsLocked();  // bpf_link_update kept each adopted link where it was, maybe behind another program
  zm::log::Info("bpf program loaded", {{"pin_dir", dir_},
                                       {"prog_id", prog_id_},
                                       {"attach_mode", AttachModeName(mode_)},
                                       {"attach_mode_reason", why},
                                       {"adopted", static_cast<int>(links_.size())}});
  return Status::Ok();
}

Status BpfManager::AdoptPinnedLinks() {
  std::vector<std::string> names;
  const std::string links_dir = dir_ + "/links";
  DIR* d = opendir(links_dir.c_str());
  if (!d) return Status::Errno("opendir " + links_dir, errno);
  while (dirent* e = readdir(d)) {
    std::string n = IfNameOfPin(e->d_name);
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  std::string first_error;
  for (const auto& name : names) {
    Status s = AdoptOne(name);
    if (!s.ok()) {
      zm::log::Error("cannot adopt pinned link", {{"ifname", name}, {"error", s.message()}});
      if (first_error.empty()) first_error = s.message();
    }
  }
  return first_error.empty() ? Status::Ok() : Status::Error("adopting pinned links: " + first_error);
}

Status BpfManager::AdoptOne(const std::string& pin_name) {
  const std::string path = LinkPin(pin_name);
  int fd = bpf_obj_get(path.c_str());
  LinkInfo info;
  Status s = fd < 0 ? Status::Errno("bpf_obj_get " + path, errno) : GetLinkInfo(fd, &info);
  std::string ifname = info.ifindex ? CurrentIfName(info.ifindex) : std::string();
  if (!s.ok() || info.type != kLinkTypeTcx || ifname.empty()) {
    // Interface gone (defunct link) or not a link of ours: the pin only keeps a dead object alive.
    zm::log::Info("unpinning stale link", {{"pin", path}, {"ifindex", info.ifindex}});
    if (fd >= 0) close(fd);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::Errno("unlink " + path, errno);
    return Status::Ok();
  }
  const int prog_fd = bpf_program__fd(skel_->progs.zm_capture);
  if (bpf_link_update(fd, prog_fd, nullptr) != 0) {
    // Never leave an old program running beside a new one: drop the link; the agent's Attach re-creates it.
    Status err = Status::Errno("bpf_link_update(" + path + ") to the new program; link removed", errno);
    bpf_link_detach(fd);
    close(fd);
    unlink(path.c_str());
    return err;
  }
  uint32_t role = ZM_ROLE_POD_VETH;
  const uint32_t key = info.ifindex;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.zm_ifaces), &key, &role) != 0) {
    zm::log::Warn("pinned link has no role in zm_ifaces; assuming pod veth", {{"ifname", ifname}});
    role = ZM_ROLE_POD_VETH;
    if (Status u = Update(bpf_map__fd(skel_->maps.zm_ifaces), &key, role, "zm_ifaces update"); !u.ok()) {
      close(fd);
      return u;
    }
  }
  if (ifname != pin_name) {  // interface renamed while we were away: keep the pin name == current name
    const std::string new_path = LinkPin(ifname);
    unlink(new_path.c_str());
    if (bpf_obj_pin(fd, new_path.c_str()) != 0) {
      int err = errno;
      close(fd);
      return Status::Errno("re-pinning link as " + new_path, err);
    }
    unlink(path.c_str());
  }
  Link& link = links_[ifname] = Link{fd, info.ifindex, static_cast<IfaceRole>(role), -1, false, 0, 0, {}};
  zm::log::Info("adopted pinned link", {{"ifname", ifname}, {"ifindex", info.ifindex}, {"link_id", info.id}});
  if (link.role != IfaceRole::kPodVeth) return Status::Ok();
  // An agent from before the egress guard has none: it is attached here, so an upgrade gains it with no restart.
  return EnsureEgress(ifname, pin_name, link);
}

Status BpfManager::EnsureEgress(const std::string& ifname, const std::string& old_pin_name, Link& link) {
  const int prog_fd = bpf_program__fd(skel_->progs.zm_guard_egress);
  if (mode_ == AttachMode::kTc) {
    if (link.tc_egress) return Status::Ok();
    if (Status s = AttachClsact(prog_fd, link.ifindex, TcDirection::kEgress, tc_priority_); !s.ok()) {
      return Status::Error("attaching the egress guard to " + ifname + ": " + s.message());
    }
    link.tc_egress = true;
    return Status::Ok();
  }
  if (link.egress_fd < 0) {
    const std::string old_pin = EgressPin(old_pin_name);
    int fd = bpf_obj_get(old_pin.c_str());
    LinkInfo info;
    if (fd >= 0 && GetLinkInfo(fd, &info).ok() && info.type == kLinkTypeTcx && info.ifindex == link.ifindex &&
        info.attach_type == static_cast<uint32_t>(kAttachTcxEgress) && bpf_link_update(fd, prog_fd, nullptr) == 0) {
      link.egress_fd = fd;
      if (old_pin_name != ifname) {
        unlink(EgressPin(ifname).c_str());
        if (bpf_obj_pin(fd, EgressPin(ifname).c_str()) == 0) unlink(old_pin.c_str());
      }
      return Status::Ok();
    }
    if (fd >= 0) {  // defunct, another interface's, or not updatable: never leave it beside a new one
      bpf_link_detach(fd);
      close(fd);
    }
    unlink(old_pin.c_str());
    if (Status s = AttachTcxEgress(prog_fd, link.ifindex, &link.egress_fd); !s.ok()) {
      return Status::Error("attaching the egress guard to " + ifname + ": " + s.message());
    }
  }
  const std::string pin = EgressPin(ifname);
  if (bpf_obj_pin(link.egress_fd, pin.c_str()) != 0 &&
      (errno != EEXIST || unlink(pin.c_str()) != 0 || bpf_obj_pin(link.egress_fd, pin.c_str()) != 0)) {
    int err = errno;
    DropEgress(ifname, link);
    return Status::Errno("pinning link " + pin, err);
  }
  return Status::Ok();
}

void BpfManager::DropEgress(const std::string& ifname, Link& link) {
  if (mode_ == AttachMode::kTc) {
    if (!link.tc_egress) return;
    if (Status s = DetachClsact(link.ifindex, TcDirection::kEgress, tc_priority_); !s.ok()) {
      zm::log::Warn("tc filter removal failed", {{"ifname", ifname}, {"error", s.message()}});
    }
    link.tc_egress = false;
    return;
  }
  if (link.egress_fd < 0) return;
  if (bpf_link_detach(link.egress_fd) != 0 && errno != ENOLINK && errno != EINVAL && errno != ENODEV) {
    zm::log::Warn("bpf link detach failed", {{"ifname", ifname}, {"direction", "egress"}, {"errno", errno}});
  }
  close(link.egress_fd);
  link.egress_fd = -1;
  unlink(EgressPin(ifname).c_str());
}

// Egress pins without an ingress link (its interface is gone, or it was adopted under another name): detached.
void BpfManager::PruneEgressPins() {
  const std::string dir = dir_ + "/links-egress";
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string n = IfNameOfPin(e->d_name);
    if (n == "." || n == "..") continue;
    auto it = links_.find(n);
    if (it == links_.end() || it->second.egress_fd < 0) stale.push_back(n);  // tc mode: every pin is stale
  }
  closedir(d);
  for (const auto& n : stale) {
    const std::string path = EgressPin(n);
    if (int fd = bpf_obj_get(path.c_str()); fd >= 0) {
      bpf_link_detach(fd);
      close(fd);
    }
    unlink(path.c_str());
    zm::log::Info("unpinned stale egress link", {{"pin", path}});
  }
}

void BpfManager::PruneIfaceRoles() {
  std::set<uint32_t> live;
  for (const auto& [name, link] : links_) live.insert(link.ifindex);
  const int fd = bpf_map__fd(skel_->maps.zm_ifaces);
  std::vector<uint32_t> stale;
  uint32_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (!live.count(next)) stale.push_back(next);
    key = next;
    prev = &key;
  }
  for (uint32_t k : stale) bpf_map_delete_elem(fd, &k);
}

void BpfManager::DropLink(const std::string& ifname, Link& link) {
  DropEgress(ifname, link);
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.zm_veth_pods), &link.ifindex);
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.zm_veth_pods6), &link.ifindex);
  if (mode_ == AttachMode::kTc) {
    if (Status s = DetachClsact(link.ifindex, TcDirection::kIngress, tc_priority_); !s.ok()) {
      zm::log::Warn("tc filter removal failed", {{"ifname", ifname}, {"error", s.message()}});
    }
  } else {
    if (bpf_link_detach(link.fd) != 0 && errno != ENOLINK && errno != EINVAL && errno != ENODEV) {
      zm::log::Warn("bpf link detach failed", {{"ifname", ifname}, {"errno", errno}});
    }
    close(link.fd);
    link.fd = -1;
    unlink(LinkPin(ifname).c_str());
  }
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.zm_ifaces), &link.ifindex);
}

Status BpfManager::Attach(uint32_t ifindex, std::string_view ifname, IfaceRole role) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  if (!ValidIfName(ifname)) return Status::Error("invalid interface name '" + std::string(ifname) + "'");
  const std::string name(ifname);
  if (CurrentIfName(ifindex) != name) {
    return Status::Error("interface " + name + " is not ifindex " + std::to_string(ifindex) +
                         " in this netns (gone or renamed)");
  }
  const int roles_fd = bpf_map__fd(skel_->maps.zm_ifaces);
  const uint32_t role_v = static_cast<uint32_t>(role);
  // The role is written first so the program never runs on this interface without knowing it.
  if (Status s = Update(roles_fd, &ifindex, role_v, "zm_ifaces update"); !s.ok()) return s;

  if (auto it = links_.find(name); it != links_.end()) {
    if (it->second.ifindex == ifindex) {
      it->second.role = role;
      if (role != IfaceRole::kPodVeth) {
        DropEgress(name, it->second);
        return Status::Ok();
      }
      return EnsureEgress(name, name, it->second);
    }
    zm::log::Info("interface recreated, replacing link", {{"ifname", name}, {"old_ifindex", it->second.ifindex}});
    DropLink(name, it->second);
    links_.erase(it);
  }
  for (auto it = links_.begin(); it != links_.end(); ++it) {
    if (it->second.ifindex != ifindex) continue;
    // Same interface under an old name (renamed): move the pin instead of attaching twice.
    Link link = it->second;
    const std::string old_name = it->first;
    if (mode_ != AttachMode::kTc) {  // tc filters have no pins to rename
      unlink(LinkPin(name).c_str());
      if (bpf_obj_pin(link.fd, LinkPin(name).c_str()) != 0) return Status::Errno("re-pinning link for " + name, errno);
      unlink(LinkPin(old_name).c_str());
    }
    if (link.egress_fd >= 0) {
      unlink(EgressPin(name).c_str());
      if (bpf_obj_pin(link.egress_fd, EgressPin(name).c_str()) != 0) {
        return Status::Errno("re-pinning egress link for " + name, errno);
      }
      unlink(EgressPin(old_name).c_str());
    }
    links_.erase(it);
    link.role = role;
    Link& moved = links_[name] = link;
    if (role != IfaceRole::kPodVeth) {
      DropEgress(name, moved);
      return Status::Ok();
    }
    return EnsureEgress(name, name, moved);
  }

  if (mode_ == AttachMode::kTc) {
    if (Status s = AttachTcIngress(name, ifindex); !s.ok()) {
      bpf_map_delete_elem(roles_fd, &ifindex);
      return s;
    }
    Link& link = links_[name] = Link{-1, ifindex, role, -1, false, 0, 0, {}};
    zm::log::Info("attached tc ingress", {{"ifname", name}, {"ifindex", ifindex}, {"role", role_v}});
    if (role != IfaceRole::kPodVeth) return Status::Ok();
    if (Status s = EnsureEgress(name, name, link); !s.ok()) {
      DropLink(name, link);
      links_.erase(name);
      return s;
    }
    zm::log::Info("attached tc egress guard", {{"ifname", name}, {"ifindex", ifindex}});
    return Status::Ok();
  }
  int fd = -1;
  if (Status s = AttachTcxIngress(bpf_program__fd(skel_->progs.zm_capture), ifindex, &fd); !s.ok()) {
    bpf_map_delete_elem(roles_fd, &ifindex);
    return Status::Error("attaching to " + name + ": " + s.message());
  }
  const std::string pin = LinkPin(name);
  if (bpf_obj_pin(fd, pin.c_str()) != 0 &&
      (errno != EEXIST || unlink(pin.c_str()) != 0 || bpf_obj_pin(fd, pin.c_str()) != 0)) {
    int err = errno;
    bpf_link_detach(fd);
    close(fd);
    bpf_map_delete_elem(roles_fd, &ifindex);
    return Status::Errno("pinning link " + pin, err);
  }
  Link& link = links_[name] = Link{fd, ifindex, role, -1, false, 0, 0, {}};
  zm::log::Info("attached tcx ingress", {{"ifname", name}, {"ifindex", ifindex}, {"role", role_v}});
  if (role == IfaceRole::kPodVeth) {
    if (Status s = EnsureEgress(name, name, link); !s.ok()) {
      // Half a veth's programs is not a state to leave: the caller retries the whole attach.
      DropLink(name, link);
      links_.erase(name);
      return s;
    }
    zm::log::Info("attached tcx egress guard", {{"ifname", name}, {"ifindex", ifindex}});
  }
  // An agent in tc mode ran here before (forced, or before a kernel upgrade): its filters go now the links are on.
  for (TcDirection dir : {TcDirection::kIngress, TcDirection::kEgress}) {
    if (Status s = DetachClsact(ifindex, dir, tc_priority_); !s.ok()) {
      zm::log::Warn("removing a tc-mode filter left on the interface", {{"ifname", name}, {"error", s.message()}});
    }
  }
  return Status::Ok();
}

Status BpfManager::Detach(std::string_view ifname) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  auto it = links_.find(ifname);
  if (it == links_.end()) return Status::Ok();
  DropLink(it->first, it->second);
  zm::log::Info("detached tcx ingress", {{"ifname", it->first}});
  links_.erase(it);
  return Status::Ok();
}

int BpfManager::ListenerMapFd(int family) const {
  if (family == AF_INET) return bpf_map__fd(skel_->maps.zm_listeners);
  if (family == AF_INET6) return bpf_map__fd(skel_->maps.zm_listeners6);
  return -1;
}

Status BpfManager::SetListener(ListenerSlot slot, int fd) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  int family = 0;
  socklen_t len = sizeof(family);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0) {
    return Status::Errno("listener fd " + std::to_string(fd) + " is no socket", errno);
  }
  const int map_fd = ListenerMapFd(family);
  const char* map = family == AF_INET6 ? "zm_listeners6" : "zm_listeners";
  if (map_fd < 0) return Status::Error("listener fd " + std::to_string(fd) + " is neither AF_INET nor AF_INET6");
  const uint32_t key = static_cast<uint32_t>(slot);
  const uint64_t value = static_cast<uint64_t>(fd);
  if (bpf_map_update_elem(map_fd, &key, &value, BPF_ANY) != 0) {
    return Status::Errno(std::string(map) + " slot " + std::to_string(key) + " (needs a TCP listening socket)", errno);
  }
  return Status::Ok();
}

Status BpfManager::ClearListener(ListenerSlot slot, int family) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  const int map_fd = ListenerMapFd(family);
  if (map_fd < 0) return Status::Error("no listener map for address family " + std::to_string(family));
  const uint32_t key = static_cast<uint32_t>(slot);
  return Delete(map_fd, &key, "zm_listeners delete");
}

bool BpfManager::HasListener(ListenerSlot slot, int family) const {
  std::lock_guard lock(mu_);
  if (!Ready()) return false;
  const int map_fd = ListenerMapFd(family);
  if (map_fd < 0) return false;
  const uint32_t key = static_cast<uint32_t>(slot);
  uint64_t cookie = 0;  // userspace lookups of a SOCKMAP return the socket cookie
  return bpf_map_lookup_elem(map_fd, &key, &cookie) == 0;
}

Status BpfManager::UpsertPod(const net::IpAddr& ip, PodState state, PodMode mode) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  const zm_pod v{static_cast<__u8>(state), static_cast<__u8>(mode)};
  if (ip.is_v4()) {
    const uint32_t key = ip.v4();
    return Update(bpf_map__fd(skel_->maps.zm_pods), &key, v, "zm_pods update");
  }
  if (!ip.is_v6()) return kNoAddress;
  const zm_addr6 key = Addr6(ip);
  return Update(bpf_map__fd(skel_->maps.zm_pods6), &key, v, "zm_pods6 update");
}

Status BpfManager::RemovePod(const net::IpAddr& ip) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  if (ip.is_v4()) {
    const uint32_t key = ip.v4();
    return Delete(bpf_map__fd(skel_->maps.zm_pods), &key, "zm_pods delete");
  }
  if (!ip.is_v6()) return kNoAddress;
  const zm_addr6 key = Addr6(ip);
  return Delete(bpf_map__fd(skel_->maps.zm_pods6), &key, "zm_pods6 delete");
}

Status BpfManager::LookupPod(const net::IpAddr& ip, PodEntry* out) const {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  zm_pod v{};
  int rc;
  if (ip.is_v4()) {
    const uint32_t key = ip.v4();
    rc = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.zm_pods), &key, &v);
  } else if (ip.is_v6()) {
    const zm_addr6 key = Addr6(ip);
    rc = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.zm_pods6), &key, &v);
  } else {
    return kNoAddress;
  }
  if (rc != 0) return Status::Errno("pod lookup " + ip.ToString(), errno);
  *out = PodEntry{ip, static_cast<PodState>(v.state), static_cast<PodMode>(v.mode)};
  return Status::Ok();
}

Status BpfManager::ListPods(std::vector<PodEntry>* out) const {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  out->clear();
  int fd = bpf_map__fd(skel_->maps.zm_pods);
  uint32_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    zm_pod v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0) {
      out->push_back(PodEntry{net::IpAddr::V4(next), static_cast<PodState>(v.state), static_cast<PodMode>(v.mode)});
    }
    key = next;
    prev = &key;
  }
  fd = bpf_map__fd(skel_->maps.zm_pods6);
  zm_addr6 key6{}, next6{};
  prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next6) == 0) {
    zm_pod v{};
    if (bpf_map_lookup_elem(fd, &next6, &v) == 0) {
      in6_addr a{};
      memcpy(&a, next6.addr, sizeof(a));
      out->push_back(PodEntry{net::IpAddr::V6(a), static_cast<PodState>(v.state), static_cast<PodMode>(v.mode)});
    }
    key6 = next6;
    prev = &key6;
  }
  return Status::Ok();
}

Status BpfManager::ReplaceSet(int map_fd, const std::vector<std::vector<uint8_t>>& keys, size_t key_size, uint8_t value,
                              const char* what) {
  std::set<std::vector<uint8_t>> wanted(keys.begin(), keys.end());
  for (const auto& k : wanted) {
    if (bpf_map_update_elem(map_fd, k.data(), &value, BPF_ANY) != 0) {
      return Status::Errno(std::string(what) + " update", errno);
    }
  }
  std::vector<std::vector<uint8_t>> stale;
  std::vector<uint8_t> cur(key_size), next(key_size);
  const void* prev = nullptr;
  while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
    if (!wanted.count(next)) stale.push_back(next);
    cur = next;
    prev = cur.data();
  }
  for (const auto& k : stale) {
    if (bpf_map_delete_elem(map_fd, k.data()) != 0 && errno != ENOENT) {
      return Status::Errno(std::string(what) + " delete", errno);
    }
  }
  return Status::Ok();
}

Status BpfManager::SetExcludedPorts(std::span<const uint16_t> ports) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  std::vector<std::vector<uint8_t>> keys;
  for (uint16_t p : ports) {
    const auto* b = reinterpret_cast<const uint8_t*>(&p);
    keys.emplace_back(b, b + sizeof(p));
  }
  return ReplaceSet(bpf_map__fd(skel_->maps.zm_excl_ports), keys, sizeof(uint16_t), ZM_EXCL_OUTBOUND, "zm_excl_ports");
}

Status BpfManager::SetExcludedCidrs(std::span<const net::Cidr> cidrs) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  std::vector<std::vector<uint8_t>> keys4, keys6;
  for (const auto& c : cidrs) {
    if (c.prefix_len > c.net.size() * 8 || c.net.empty()) {
      return Status::Error("invalid CIDR " + c.ToString() + " (prefix length " + std::to_string(c.prefix_len) + ")");
    }
    if (c.net.is_v4()) {
      keys4.push_back(KeyBytes(zm_lpm_v4{c.prefix_len, c.net.v4()}));
    } else {
      zm_lpm_v6 k{c.prefix_len, {}};
      memcpy(k.addr, c.net.bytes(), sizeof(k.addr));
      keys6.push_back(KeyBytes(k));
    }
  }
  // Each family's set is replaced whole; the IPv4 one first, as before IPv6 existed.
  if (Status s = ReplaceSet(bpf_map__fd(skel_->maps.zm_excl_cidrs), keys4, sizeof(zm_lpm_v4), 1, "zm_excl_cidrs");
      !s.ok()) {
    return s;
  }
  return ReplaceSet(bpf_map__fd(skel_->maps.zm_excl_cidrs6), keys6, sizeof(zm_lpm_v6), 1, "zm_excl_cidrs6");
}

Status BpfManager::SetCfgFlag(uint32_t flag, bool on) {
  const uint32_t key = 0;
  zm_cfg cfg{};
  const int fd = bpf_map__fd(skel_->maps.zm_cfg);
  if (bpf_map_lookup_elem(fd, &key, &cfg) != 0) return Status::Errno("zm_cfg lookup", errno);
  cfg.flags = on ? (cfg.flags | flag) : (cfg.flags & ~flag);
  return Update(fd, &key, cfg, "zm_cfg update");
}

Status BpfManager::SetCaptureUnknown(bool on) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  return SetCfgFlag(ZM_CFG_CAPTURE_UNKNOWN, on);
}

Status BpfManager::SetStrictUdpAllowed(bool on) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  return SetCfgFlag(ZM_CFG_STRICT_UDP_ALLOW, on);
}

Status BpfManager::SetProbePorts(std::span<const ProbePort> ports) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  std::vector<std::vector<uint8_t>> keys4, keys6;
  for (const auto& p : ports) {
    if (p.ip.is_v4()) {
      keys4.push_back(KeyBytes(zm_probe_key{p.ip.v4(), p.port, 0}));
    } else if (p.ip.is_v6()) {
      zm_probe_key6 k{{}, p.port, 0};
      memcpy(k.addr, p.ip.bytes(), sizeof(k.addr));
      keys6.push_back(KeyBytes(k));
    } else {
      return Status::Error("probe port " + std::to_string(p.port) + " without a pod address");
    }
  }
  if (Status s = ReplaceSet(bpf_map__fd(skel_->maps.zm_probe_ports), keys4, sizeof(zm_probe_key), 1, "zm_probe_ports");
      !s.ok()) {
    return s;
  }
  return ReplaceSet(bpf_map__fd(skel_->maps.zm_probe_ports6), keys6, sizeof(zm_probe_key6), 1, "zm_probe_ports6");
}

Status BpfManager::SetVethPod(uint32_t ifindex, const net::IpAddr& ip) {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  // Written whether or not the veth is attached yet (the first snapshot comes before the link dump): only the
  // programs of pod veths read it, and DropLink forgets the entry with the link.
  if (ip.is_v4()) return Update(bpf_map__fd(skel_->maps.zm_veth_pods), &ifindex, ip.v4(), "zm_veth_pods update");
  if (!ip.is_v6()) return kNoAddress;
  return Update(bpf_map__fd(skel_->maps.zm_veth_pods6), &ifindex, Addr6(ip), "zm_veth_pods6 update");
}

int BpfManager::RepairTcxPositions() {
  std::lock_guard lock(mu_);
  if (!Ready()) return 0;
  return RepairTcxPositionsLocked();
}

int BpfManager::RepairTcxPositionsLocked() {
  int repaired = 0;
  const int capture_fd = bpf_program__fd(skel_->progs.zm_capture);
  const int capture_twin_fd = bpf_program__fd(skel_->progs.zm_capture_twin);
  const int guard_fd = bpf_program__fd(skel_->progs.zm_guard_egress);
  const int guard_twin_fd = bpf_program__fd(skel_->progs.zm_guard_egress_twin);
  for (auto& [name, link] : links_) {
    std::string what;
    if (mode_ == AttachMode::kTc) {
      if (int fixed = RepairTcFilters(name, link, &what); fixed > 0) {
        repaired += fixed;
        link.repairs += static_cast<uint32_t>(fixed);
        link.last_repair_unix = time(nullptr);
        link.last_repair = what;
      }
      continue;
    }
    int fixed = RepairPosition(name, link.ifindex, kAttachTcxIngress, capture_fd, capture_twin_fd, LinkPin(name),
                               &link.fd, &what);
    if (link.egress_fd >= 0) {
      fixed += RepairPosition(name, link.ifindex, kAttachTcxEgress, guard_fd, guard_twin_fd, EgressPin(name),
                              &link.egress_fd, &what);
    }
    if (fixed > 0) {
      repaired += fixed;
      link.repairs += static_cast<uint32_t>(fixed);
      link.last_repair_unix = time(nullptr);
      link.last_repair = what;
    }
  }
  attach_repairs_ += static_cast<uint64_t>(repaired);
  return repaired;
}

// One link: fine if the kernel lists it first at its hook. Otherwise a new link is created first and the old one
// detached. BPF_LINK_UPDATE alone is no repair for a displaced link: it swaps the program and keeps the position. The
// new link comes before the old one goes, so there is no instant without our program on the device (a STRICT pod's
// traffic would leave uncaptured); as tcx refuses one program twice on a hook (EEXIST), the old link first switches to
// the program's twin (same code, same maps). Meanwhile a packet may meet our logic twice, which is harmless: a packet
// it acts on ends the chain, the others only go on (TCX_NEXT).
bool BpfManager::RepairPosition(const std::string& ifname, uint32_t ifindex, int attach_type, int prog_fd, int twin_fd,
                                const std::string& pin, int* fd, std::string* what) {
  LinkInfo info;
  if (Status s = GetLinkInfo(*fd, &info); !s.ok()) {
    zm::log::Warn("cannot read link info", {{"ifname", ifname}, {"error", s.message()}});
    return false;
  }
  TcxQueryResult q;
  if (Status s = QueryTcx(ifindex, attach_type, &q); !s.ok()) {
    return false;  // interface gone: the link watcher's event detaches it
  }
  if (!q.link_ids.empty() && q.link_ids.front() == info.id && info.ifindex == ifindex) return false;
  bool detached = true;
  std::string ahead;  // the programs that run before ours now
  for (size_t i = 0; i < q.link_ids.size(); ++i) {
    if (q.link_ids[i] == info.id) {
      detached = false;
      break;
    }
    ahead += (ahead.empty() ? "" : ",") + std::to_string(q.prog_ids[i]);
  }
  const char* direction = attach_type == kAttachTcxEgress ? "egress" : "ingress";
  auto fail = [&](const std::string& what, const Status& s) {
    zm::log::Error(
        "cannot repair tcx position",
        {{"ifname", ifname}, {"direction", direction}, {"other_prog_ids", ahead}, {"error", what + s.message()}});
    return false;
  };
  if (!detached && bpf_link_update(*fd, twin_fd, nullptr) != 0) {
    return fail("switching the old link to the twin program: ", Status::Errno("bpf_link_update", errno));
  }
  int nfd = -1;
  if (Status s = AttachTcx(prog_fd, ifindex, attach_type, kTcxBefore, &nfd); !s.ok()) {
    if (!detached) (void)bpf_link_update(*fd, prog_fd, nullptr);  // the old link keeps running, where it is
    return fail("", s);
  }
  unlink(pin.c_str());
  if (bpf_obj_pin(nfd, pin.c_str()) != 0) {  // attached while this agent runs; a restart attaches it again
    zm::log::Warn("cannot pin repaired link", {{"pin", pin}, {"errno", errno}});
  }
  if (!detached && bpf_link_detach(*fd) != 0) {
    zm::log::Warn("bpf link detach failed", {{"ifname", ifname}, {"direction", direction}, {"errno", errno}});
  }
  close(*fd);
  *fd = nfd;
  *what += (what->empty() ? "" : ", ") + std::string(direction) +
           (detached ? " detached" : " displaced behind prog " + ahead);
  LinkInfo now;
  (void)GetLinkInfo(nfd, &now);
  zm::log::Warn("tcx position repaired", {{"ifname", ifname},
                                          {"direction", direction},
                                          {"reason", detached ? "detached" : "displaced"},
                                          {"other_prog_ids", ahead},
                                          {"old_link_id", info.id},
                                          {"link_id", now.id}});
  return true;
}

Status BpfManager::AttachTcIngress(const std::string& ifname, uint32_t ifindex) {
  Status s = AttachClsact(bpf_program__fd(skel_->progs.zm_capture), ifindex, TcDirection::kIngress, tc_priority_);
  return s.ok() ? s : Status::Error("attaching to " + ifname + ": " + s.message());
}

// tc mode, at Init: every interface of the pinned roles map that still carries our filter gets the new program in
// place (same handle and priority: the kernel swaps it, no packet goes unfiltered) and is managed again.
void BpfManager::AdoptTcFilters() {
  const int fd = bpf_map__fd(skel_->maps.zm_ifaces);
  std::vector<std::pair<uint32_t, uint32_t>> roles;
  uint32_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    uint32_t role = 0;
    if (bpf_map_lookup_elem(fd, &next, &role) == 0) roles.emplace_back(next, role);
    key = next;
    prev = &key;
  }
  for (auto [ifindex, role] : roles) {
    const std::string name = CurrentIfName(ifindex);
    uint32_t prog = 0;
    if (name.empty() || links_.count(name) || !QueryClsact(ifindex, TcDirection::kIngress, tc_priority_, &prog).ok() ||
        prog == 0) {
      continue;  // gone, or not ours any more: PruneIfaceRoles forgets it, the link watcher's Attach re-adds it
    }
    if (Status s = AttachTcIngress(name, ifindex); !s.ok()) {
      zm::log::Error("cannot adopt tc filter", {{"ifname", name}, {"error", s.message()}});
      continue;
    }
    Link& link = links_[name] = Link{-1, ifindex, static_cast<IfaceRole>(role), -1, false, 0, 0, {}};
    if (link.role == IfaceRole::kPodVeth) {
      if (Status s = EnsureEgress(name, name, link); !s.ok()) {
        zm::log::Error("cannot adopt the egress guard", {{"ifname", name}, {"error", s.message()}});
      }
    }
    zm::log::Info("adopted tc filter", {{"ifname", name}, {"ifindex", ifindex}, {"old_prog_id", prog}});
  }
}

// tc mode, at Init, after an agent in tcx mode: each pinned tcx link's interface gets our filters first, then the
// link is detached and unpinned (for a moment both run: harmless, as when a tcx link is repaired).
void BpfManager::MigrateTcxPinsToTc() {
  const std::string links_dir = dir_ + "/links";
  std::vector<std::string> names;
  if (DIR* d = opendir(links_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = IfNameOfPin(e->d_name);
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  for (const auto& pin_name : names) {
    const std::string pin = LinkPin(pin_name), egress_pin = EgressPin(pin_name);
    int fd = bpf_obj_get(pin.c_str());
    LinkInfo info;
    bool live = fd >= 0 && GetLinkInfo(fd, &info).ok() && info.type == kLinkTypeTcx && info.ifindex != 0 &&
                !CurrentIfName(info.ifindex).empty();
    bool moved = !live;  // a defunct link only needs its pin gone
    if (live) {
      uint32_t role = ZM_ROLE_POD_VETH;
      (void)bpf_map_lookup_elem(bpf_map__fd(skel_->maps.zm_ifaces), &info.ifindex, &role);
      Status s =
          AttachClsact(bpf_program__fd(skel_->progs.zm_capture), info.ifindex, TcDirection::kIngress, tc_priority_);
      if (s.ok() && role == ZM_ROLE_POD_VETH) {
        s = AttachClsact(bpf_program__fd(skel_->progs.zm_guard_egress), info.ifindex, TcDirection::kEgress,
                         tc_priority_);
      }
      if (s.ok()) {
        moved = true;
      } else {
        zm::log::Error("cannot move a tcx link to tc; it stays", {{"ifname", pin_name}, {"error", s.message()}});
      }
    }
    if (moved) {
      if (fd >= 0) bpf_link_detach(fd);
      if (int efd = bpf_obj_get(egress_pin.c_str()); efd >= 0) {
        bpf_link_detach(efd);
        close(efd);
      }
      unlink(pin.c_str());
      unlink(egress_pin.c_str());
      if (live) zm::log::Info("moved tcx link to tc", {{"ifname", pin_name}, {"ifindex", info.ifindex}});
    }
    if (fd >= 0) close(fd);
  }
}

// tc mode: a filter of ours someone removed (tc filter del, the clsact qdisc deleted and re-created by another
// tool) or replaced at our handle is put back. Returns how many of the interface's two filters were.
int BpfManager::RepairTcFilters(const std::string& ifname, Link& link, std::string* what) {
  if (CurrentIfName(link.ifindex) != ifname) return 0;  // interface going away: the link watcher's event handles it
  int fixed = 0;
  auto check = [&](TcDirection dir, int prog_fd, uint32_t want) {
    uint32_t now = 0;
    if (!QueryClsact(link.ifindex, dir, tc_priority_, &now).ok() || now == want) return;
    if (Status s = AttachClsact(prog_fd, link.ifindex, dir, tc_priority_); !s.ok()) {
      zm::log::Error("cannot repair tc filter",
                     {{"ifname", ifname}, {"direction", TcDirectionName(dir)}, {"error", s.message()}});
      return;
    }
    ++fixed;
    const std::string found = now == 0 ? " removed" : " replaced by prog " + std::to_string(now);
    *what += (what->empty() ? "" : ", ") + std::string(TcDirectionName(dir)) + found;
    zm::log::Warn("tc filter repaired", {{"ifname", ifname},
                                         {"direction", TcDirectionName(dir)},
                                         {"reason", now == 0 ? "removed" : "replaced"},
                                         {"other_prog_id", now}});
  };
  check(TcDirection::kIngress, bpf_program__fd(skel_->progs.zm_capture), prog_id_);
  if (link.tc_egress) check(TcDirection::kEgress, bpf_program__fd(skel_->progs.zm_guard_egress), guard_prog_id_);
  return fixed;
}

Status BpfManager::Stats(CaptureStats* out) const {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  uint64_t sums[ZM_STAT_COUNT] = {};
  if (Status s = SumPerCpuCounters(bpf_map__fd(skel_->maps.zm_stats), "zm_stats", sums); !s.ok()) return s;
  out->captured_outbound = sums[ZM_STAT_CAPTURED_OUTBOUND];
  out->captured_hbone = sums[ZM_STAT_CAPTURED_HBONE];
  out->captured_plaintext = sums[ZM_STAT_CAPTURED_PLAINTEXT];
  out->assigned_established = sums[ZM_STAT_ASSIGNED_ESTABLISHED];
  out->dropped_fail_closed = sums[ZM_STAT_DROPPED_FAIL_CLOSED];
  out->assign_errors = sums[ZM_STAT_ASSIGN_ERRORS];
  out->passed_fail_open = sums[ZM_STAT_PASSED_FAIL_OPEN];
  out->dropped_orphan = sums[ZM_STAT_DROPPED_ORPHAN];
  uint64_t guards[ZM_GUARD_COUNT] = {};
  if (Status s = SumPerCpuCounters(bpf_map__fd(skel_->maps.zm_guard_stats), "zm_guard_stats", guards); !s.ok()) {
    return s;
  }
  out->dropped_node_plaintext = guards[ZM_GUARD_NODE_PLAINTEXT];
  out->passed_probe = guards[ZM_GUARD_PROBE_PASSED];
  out->dropped_fragment = guards[ZM_GUARD_FRAGMENT];
  out->dropped_ipv6 = guards[ZM_GUARD_IPV6];
  out->dropped_udp = guards[ZM_GUARD_UDP];
  out->attach_repairs = attach_repairs_;
  return Status::Ok();
}

std::vector<Attachment> BpfManager::Attachments() const {
  std::lock_guard lock(mu_);
  std::vector<Attachment> out;
  for (const auto& [name, link] : links_) {
    Attachment a{name,         link.ifindex,          link.role,       0, 0, mode_ == AttachMode::kTc,
                 link.repairs, link.last_repair_unix, link.last_repair};
    if (a.tc) {
      (void)QueryClsact(link.ifindex, TcDirection::kIngress, tc_priority_, &a.prog_id);
      out.push_back(std::move(a));
      continue;
    }
    LinkInfo info;
    if (GetLinkInfo(link.fd, &info).ok()) {
      a.link_id = info.id;
      a.prog_id = info.prog_id;
    }
    out.push_back(std::move(a));
  }
  return out;
}

AttachMode BpfManager::Mode() const {
  std::lock_guard lock(mu_);
  return mode_;
}

uint32_t BpfManager::ProgramId() const {
  std::lock_guard lock(mu_);
  return prog_id_;
}

std::string BpfManager::PinDir() const {
  std::lock_guard lock(mu_);
  return dir_;
}

Status BpfManager::Destroy() {
  std::lock_guard lock(mu_);
  if (!Ready()) return kNotReady;
  for (auto& [name, link] : links_) DropLink(name, link);
  links_.clear();
  capture_bpf__destroy(skel_);
  skel_ = nullptr;
  prog_id_ = 0;
  Status s = PurgePinDir(dir_);
  zm::log::Info("bpf state destroyed", {{"pin_dir", dir_}, {"ok", s.ok()}});
  return s;
}

Status BpfManager::Purge(std::string_view agent_id, std::string_view pin_root, uint32_t tc_priority) {
  if (!ValidAgentId(agent_id)) return Status::Error("invalid agent id '" + std::string(agent_id) + "'");
  const std::string dir = std::string(pin_root) + "/" + std::string(agent_id);
  // tc filters are not pinned: the interfaces come from the pinned roles map (absent filters are fine).
  if (int fd = bpf_obj_get((dir + "/zm_ifaces").c_str()); fd >= 0) {
    uint32_t key = 0, next = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      for (TcDirection d : {TcDirection::kIngress, TcDirection::kEgress}) (void)DetachClsact(next, d, tc_priority);
      key = next;
      prev = &key;
    }
    close(fd);
  }
  return PurgePinDir(dir);
}

}  // namespace zm::agent::bpf
