#include "tools/meshctl/check.h"

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/bpf/attach_check.h"
#include "agent/bpf/tcx.h"
#include "tools/meshctl/output.h"

namespace zm::meshctl {
namespace {

constexpr int kCapNetAdmin = 12, kCapSysAdmin = 21, kCapBpf = 39;
constexpr const char* kOurProgram = "zm_capture";

bool FsIs(const char* path, int64_t magic) {
  struct statfs s {};
  return statfs(path, &s) == 0 && static_cast<int64_t>(s.f_type) == magic;
}

std::string ReadFile(const char* path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string ProgName(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "id " + std::to_string(id);
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  std::string name = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.name : "";
  close(fd);
  return name;
}

// Legacy tc filters (clsact) on ifname, through the tc tool: nothing to say if it is missing.
std::string TcFilters(const std::string& ifname) {
  std::string out;
  for (const char* dir : {"ingress", "egress"}) {
    std::string cmd = "tc filter show dev '" + ifname + "' " + dir + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return "";
    char buf[256];
    std::string text;
    while (fgets(buf, sizeof(buf), p)) text += buf;
    pclose(p);
    if (!text.empty()) out += std::string(out.empty() ? "" : ", ") + "tc " + dir + " filters";
  }
  return out;
}

CheckResult KernelCheck() {
  utsname u{};
  uname(&u);
  auto v = ParseKernelRelease(u.release);
  bool ok = v && (v->first > 6 || (v->first == 6 && v->second >= 6));
  return {"kernel", ok, std::string("Linux ") + u.release,
          "zeromesh attaches with tcx (BPF_TCX_INGRESS), which needs Linux 6.6 or newer: upgrade the kernel"};
}

CheckResult TcxCheck() {
  // A query on lo is harmless and tells whether the kernel knows tcx at all.
  agent::bpf::TcxQueryResult q;
  auto st = agent::bpf::QueryTcxIngress(1, &q);
  if (st.ok()) return {"tcx", true, "BPF_PROG_QUERY at tcx ingress works", ""};
  bool perm = st.error_code() == EPERM || st.error_code() == EACCES;
  return {"tcx", false, st.message(),
          perm ? "run meshctl check as root (mesh-agent runs privileged)"
               : "this kernel cannot attach tcx programs: Linux 6.6+ with CONFIG_NET_XGRESS is needed"};
}

CheckResult CapsCheck() {
  auto caps = EffectiveCaps(ReadFile("/proc/self/status"));
  if (!caps) return {"capabilities", false, "cannot read CapEff from /proc/self/status", "run on Linux with /proc"};
  std::string missing;
  for (auto [bit, name] : {std::pair{kCapBpf, "CAP_BPF"}, std::pair{kCapNetAdmin, "CAP_NET_ADMIN"},
                           std::pair{kCapSysAdmin, "CAP_SYS_ADMIN"}}) {
    if (!(*caps & (uint64_t{1} << bit))) missing += std::string(missing.empty() ? "" : ", ") + name;
  }
  return {"capabilities", missing.empty(),
          missing.empty() ? "CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN" : "missing " + missing,
          "run as root, or grant the mesh-agent container CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (privileged)"};
}

CheckResult ConflictsCheck() {
  std::vector<agent::bpf::LinkEvent> links;
  if (auto st = agent::bpf::ListLinks(&links); !st.ok()) {
    return {"conflicting programs", false, "cannot list interfaces: " + st.message(), "run as root on the node"};
  }
  std::string found;
  int veths = 0;
  for (const auto& l : links) {
    if (l.kind != "veth") continue;
    veths++;
    agent::bpf::TcxQueryResult q;
    if (agent::bpf::QueryTcxIngress(l.ifindex, &q).ok()) {
      for (uint32_t id : q.prog_ids) {
        std::string name = ProgName(id);
        if (name != kOurProgram) found += (found.empty() ? "" : "; ") + l.name + ": tcx program " + name;
      }
    }
    if (auto tc = TcFilters(l.name); !tc.empty()) found += (found.empty() ? "" : "; ") + l.name + ": " + tc;
  }
  if (found.empty())
    return {"conflicting programs", true, std::to_string(veths) + " veth(s), no foreign tc/tcx programs", ""};
  return {"conflicting programs", false, found,
          "another CNI plugin or mesh hooks these veths: remove its programs or exclude the node from zeromesh"};
}

}  // namespace

std::optional<std::pair<int, int>> ParseKernelRelease(const std::string& release) {
  int major = 0, minor = 0;
  if (std::sscanf(release.c_str(), "%d.%d", &major, &minor) != 2) return std::nullopt;
  return std::pair{major, minor};
}

std::optional<uint64_t> EffectiveCaps(const std::string& proc_status) {
  std::istringstream in(proc_status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      try {
        return std::stoull(line.substr(7), nullptr, 16);
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

std::string Cgroup2Mount(const std::string& mounts) {
  std::istringstream in(mounts);
  std::string dev, dir, type, rest, found;
  while (in >> dev >> dir >> type && std::getline(in, rest)) {
    if (type == "cgroup2" && (found.empty() || dir == "/sys/fs/cgroup")) found = dir;
  }
  return found;
}

std::vector<CheckResult> RunLocalChecks() {
  std::vector<CheckResult> out;
  out.push_back(KernelCheck());
  bool btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  out.push_back({"btf", btf, btf ? "/sys/kernel/btf/vmlinux" : "/sys/kernel/btf/vmlinux missing",
                 "the capture program is CO-RE: use a kernel built with CONFIG_DEBUG_INFO_BTF=y"});
  std::string cg2 = Cgroup2Mount(ReadFile("/proc/self/mounts"));
  out.push_back({"cgroup v2", !cg2.empty(),
                 cg2.empty() ? "no cgroup2 mount" : cg2 + (cg2 == "/sys/fs/cgroup" ? "" : " (hybrid hierarchy)"),
                 "mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup, or boot with "
                 "systemd.unified_cgroup_hierarchy=1)"});
  bool bpffs = FsIs("/sys/fs/bpf", BPF_FS_MAGIC);
  out.push_back({"bpffs", bpffs, bpffs ? "/sys/fs/bpf is bpffs" : "/sys/fs/bpf is not a bpffs mount",
                 "mount -t bpf bpf /sys/fs/bpf (and mount it into the mesh-agent pod)"});
  out.push_back(TcxCheck());
  out.push_back(CapsCheck());
  out.push_back(ConflictsCheck());
  return out;
}

nlohmann::json ChecksJson(const std::vector<CheckResult>& checks) {
  nlohmann::json j = {{"checks", nlohmann::json::array()}, {"problems", nlohmann::json::array()}};
  for (const auto& c : checks) {
    j["checks"].push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}, {"hint", c.ok ? "" : c.hint}});
    if (!c.ok) j["problems"].push_back({{"message", c.name + ": " + c.detail}, {"hint", c.hint}});
  }
  j["healthy"] = j["problems"].empty();
  return j;
}

std::string RenderChecks(const nlohmann::json& j) {
  Table t({"CHECK", "RESULT", "DETAIL"});
  for (const auto& c : j["checks"]) t.Add({c["name"], c["ok"].get<bool>() ? "ok" : "FAIL", c["detail"]});
  std::string out = t.Render();
  if (j["problems"].empty()) return out + "\nall checks passed\n";
  out += "\nPROBLEMS (" + std::to_string(j["problems"].size()) + ")\n";
  for (const auto& p : j["problems"]) {
    out += "- " + Wrap(p["message"].get<std::string>(), kMaxWidth, 2) + "\n";
    out += "  fix: " + Wrap(p["hint"].get<std::string>(), kMaxWidth, 7) + "\n";
  }
  return out;
}

}  // namespace zm::meshctl
