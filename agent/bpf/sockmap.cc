#include "agent/bpf/sockmap.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/bpf/percpu_counters.h"
#include "bpf/sockmap_abi.h"
#include "common/log.h"
#include "sockmap.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace zm::agent::bpf {
namespace {

constexpr const char* kLinkPin = "/sockops_link";
constexpr const char* kCfgPin = "/zm_sockmap_cfg";

Status NetnsCookie(uint64_t* out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Errno("socket for the netns cookie", errno);
  socklen_t len = sizeof(*out);
  int rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, out, &len);
  int err = errno;
  close(fd);
  if (rc != 0) return Status::Errno("getsockopt(SO_NETNS_COOKIE)", err);
  return Status::Ok();
}

// A cgroup v2 directory other than the root: only non-root cgroups have cgroup.type.
Status OpenCgroup(const std::string& path, int* fd, uint64_t* id) {
  struct stat st {};
  if (path.empty() || stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Error("sockops cgroup '" + path + "' is not a directory");
  }
  if (access((path + "/cgroup.type").c_str(), F_OK) != 0) {
    return Status::Error("sockops cgroup '" + path + "' is not a non-root cgroup v2 directory (refusing the root)");
  }
  *fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0) return Status::Errno("opening cgroup " + path, errno);
  *id = st.st_ino;  // cgroup v2: the cgroup id is its directory's inode number
  return Status::Ok();
}

bool KeyOf(const sockaddr_storage& local, const sockaddr_storage& remote, zm_sock_key* k) {
  std::memset(k, 0, sizeof(*k));
  k->side = ZM_SIDE_PROXY;
  if (local.ss_family == AF_INET && remote.ss_family == AF_INET) {
    const auto& l = reinterpret_cast<const sockaddr_in&>(local);
    const auto& r = reinterpret_cast<const sockaddr_in&>(remote);
    k->family = 4;
    k->local[0] = l.sin_addr.s_addr;
    k->remote[0] = r.sin_addr.s_addr;
    k->lport = ntohs(l.sin_port);
    k->rport = ntohs(r.sin_port);
    return true;
  }
  if (local.ss_family == AF_INET6 && remote.ss_family == AF_INET6) {
    const auto& l = reinterpret_cast<const sockaddr_in6&>(local);
    const auto& r = reinterpret_cast<const sockaddr_in6&>(remote);
    const bool mapped = IN6_IS_ADDR_V4MAPPED(&l.sin6_addr) && IN6_IS_ADDR_V4MAPPED(&r.sin6_addr);
    k->family = mapped ? 4 : 6;
    if (mapped) {
      std::memcpy(&k->local[0], &l.sin6_addr.s6_addr[12], 4);
      std::memcpy(&k->remote[0], &r.sin6_addr.s6_addr[12], 4);
    } else {
      std::memcpy(k->local, &l.sin6_addr, 16);
      std::memcpy(k->remote, &r.sin6_addr, 16);
    }
    k->lport = ntohs(l.sin6_port);
    k->rport = ntohs(r.sin6_port);
    return true;
  }
  return false;
}

}  // namespace

bool ParseSockmapMode(std::string_view s, SockmapMode* out) {
  if (s == "off")
    *out = SockmapMode::kOff;
  else if (s == "from-pod" || s == "on")
    *out = SockmapMode::kFromPod;
  else if (s == "both")
    *out = SockmapMode::kBoth;
  else
    return false;
  return true;
}

const char* SockmapModeName(SockmapMode m) {
  switch (m) {
    case SockmapMode::kOff:
      return "off";
    case SockmapMode::kFromPod:
      return "from-pod";
    case SockmapMode::kBoth:
      return "both";
  }
  return "?";
}

Sockmap::~Sockmap() {
  if (link_fd_ >= 0) close(link_fd_);
  if (skel_) sockmap_bpf__destroy(skel_);
}

Status Sockmap::Init(const std::string& pin_dir, const std::string& cgroup, SockmapMode mode, uint32_t max_unread) {
  if (skel_) return Status::Error("sockmap already initialized");
  if (mode == SockmapMode::kOff) return Status::Error("sockmap mode is off (use Disable)");
  if (max_unread < 4096) return Status::Error("sockmap max unread must be at least 4096 bytes");
  int cg_fd = -1;
  uint64_t cg_id = 0;
  if (Status s = OpenCgroup(cgroup, &cg_fd, &cg_id); !s.ok()) return s;
  zm_sockmap_cfg cfg{};
  uint64_t cookie = 0;
  if (Status s = NetnsCookie(&cookie); !s.ok()) {
    close(cg_fd);
    return s;
  }
  cfg.netns_cookie = cookie;
  cfg.flags = ZM_SOCKMAP_FROM_POD | (mode == SockmapMode::kBoth ? ZM_SOCKMAP_TO_POD : 0);
  cfg.max_unread = max_unread;

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir.c_str());
  sockmap_bpf* skel = sockmap_bpf__open_opts(&opts);
  if (!skel) {
    close(cg_fd);
    return Status::Errno("opening BPF object sockmap.bpf.o", errno);
  }
  auto fail = [&](Status s) {
    close(cg_fd);
    sockmap_bpf__destroy(skel);
    return s;
  };
  if (int err = sockmap_bpf__load(skel); err != 0) {
    return fail(Status::Errno("loading the sockmap programs (verifier rejection, or pinned maps in " + pin_dir +
                                  " incompatible with this build: see libbpf log)",
                              err));
  }
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.zm_sockmap_cfg), &zero, &cfg, BPF_ANY) != 0) {
    return fail(Status::Errno("zm_sockmap_cfg update", errno));
  }
  // Replaces the verdict an earlier agent attached to the pinned map; sockets already in it keep their program.
  if (bpf_prog_attach(bpf_program__fd(skel->progs.zm_sk_msg), bpf_map__fd(skel->maps.zm_socks), BPF_SK_MSG_VERDICT,
                      0) != 0) {
    return fail(Status::Errno("attaching the sk_msg verdict to zm_socks", errno));
  }
  // The sock_ops link: an earlier agent's is moved to the new program in place when it is on the same cgroup.
  const std::string pin = pin_dir + kLinkPin;
  const int prog_fd = bpf_program__fd(skel->progs.zm_sockops);
  int link = bpf_obj_get(pin.c_str());
  if (link >= 0) {
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(link, &info, &len) == 0 && info.cgroup.cgroup_id == cg_id &&
        bpf_link_update(link, prog_fd, nullptr) == 0) {
      zm::log::Info("sockmap: adopted the pinned sock_ops link", {{"cgroup", cgroup}});
    } else {
      bpf_link_detach(link);
      close(link);
      unlink(pin.c_str());
      link = -1;
    }
  }
  if (link < 0) {
    link = bpf_link_create(prog_fd, cg_fd, BPF_CGROUP_SOCK_OPS, nullptr);
    if (link < 0) return fail(Status::Errno("attaching sock_ops to cgroup " + cgroup, errno));
    if (bpf_obj_pin(link, pin.c_str()) != 0) {
      int err = errno;
      close(link);
      return fail(Status::Errno("pinning the sock_ops link at " + pin, err));
    }
  }
  close(cg_fd);
  skel_ = skel;
  link_fd_ = link;
  zm::log::Info("sockmap on", {{"mode", SockmapModeName(mode)}, {"cgroup", cgroup}, {"max_unread", max_unread}});
  return Status::Ok();
}

Status Sockmap::Disable(const std::string& pin_dir) {
  const std::string pin = pin_dir + kLinkPin;
  if (int link = bpf_obj_get(pin.c_str()); link >= 0) {
    bpf_link_detach(link);
    close(link);
    if (unlink(pin.c_str()) != 0) return Status::Errno("unpinning " + pin, errno);
    zm::log::Info("sockmap off: detached the sock_ops link of an earlier agent", {});
  }
  if (int cfg_fd = bpf_obj_get((pin_dir + kCfgPin).c_str()); cfg_fd >= 0) {
    const uint32_t zero = 0;
    zm_sockmap_cfg cfg{};
    Status s;
    if (bpf_map_lookup_elem(cfg_fd, &zero, &cfg) == 0) {
      cfg.flags = 0;  // the verdicts of sockets still in zm_socks pass everything from now on
      if (bpf_map_update_elem(cfg_fd, &zero, &cfg, BPF_ANY) != 0) s = Status::Errno("zm_sockmap_cfg update", errno);
    }
    close(cfg_fd);
    return s;
  }
  return Status::Ok();
}

Status Sockmap::AddProxySocket(int fd) {
  if (!skel_) return Status::Error("sockmap not initialized");
  sockaddr_storage local{}, remote{};
  socklen_t ll = sizeof(local), rl = sizeof(remote);
  zm_sock_key key;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &rl) != 0 || !KeyOf(local, remote, &key)) {
    proxy_add_errors_.fetch_add(1, std::memory_order_relaxed);
    return Status::Errno("sockmap: addresses of a proxy socket", errno);
  }
  const uint64_t value = static_cast<uint64_t>(fd);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zm_socks), &key, &value, BPF_ANY) != 0) {
    proxy_add_errors_.fetch_add(1, std::memory_order_relaxed);
    return Status::Errno("sockmap: adding a proxy socket to zm_socks", errno);
  }
  return Status::Ok();
}

Status Sockmap::Stats(SockmapStats* out) const {
  if (!skel_) return Status::Error("sockmap not initialized");
  uint64_t sums[ZM_SM_COUNT] = {};
  if (Status s = SumPerCpuCounters(bpf_map__fd(skel_->maps.zm_sockmap_stats), "zm_sockmap_stats", sums); !s.ok()) {
    return s;
  }
  out->redirected_bytes = sums[ZM_SM_REDIRECTED_BYTES];
  out->redirected_msgs = sums[ZM_SM_REDIRECTED_MSGS];
  out->passed_no_peer = sums[ZM_SM_PASSED_NO_PEER];
  out->passed_backpressure = sums[ZM_SM_PASSED_BACKPRESSURE];
  out->passed_tcp_pending = sums[ZM_SM_PASSED_TCP_PENDING];
  out->demoted_to_pod = sums[ZM_SM_DEMOTED_TO_POD];
  out->sockets_added = sums[ZM_SM_SOCKETS_ADDED];
  out->add_errors = sums[ZM_SM_ADD_ERRORS];
  return Status::Ok();
}

}  // namespace zm::agent::bpf
