#include "tools/meshctl/check.h"

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "agent/bpf/attach_check.h"
#include "agent/bpf/tc_clsact.h"
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

CheckResult KernelCheck() {
  utsname u{};
  uname(&u);
  return KernelVerdict(u.release);
}

// Does the kernel have tcx? A query on lo is harmless and says. Either way the agent has a hook: tcx or tc.
CheckResult TcxCheck(bool* tcx) {
  agent::bpf::TcxQueryResult q;
  auto st = agent::bpf::QueryTcxIngress(1, &q);
  *tcx = st.ok();
  if (st.ok()) return {"tcx", true, "tcx links (Linux 6.6+): the agent attaches with tcx", ""};
  bool perm = st.error_code() == EPERM || st.error_code() == EACCES;
  if (perm) return {"tcx", false, st.message(), "run meshctl check as root (mesh-agent runs privileged)"};
  return {"tcx", true,
          "no tcx on this kernel (" + st.message() + "): the agent uses cls_bpf filters on clsact (tc priority 1)", ""};
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

CheckResult ConflictsCheck(bool tcx) {
  std::vector<agent::bpf::LinkEvent> links;
  if (auto st = agent::bpf::ListLinks(&links); !st.ok()) {
    return {"conflicting programs", false, "cannot list interfaces: " + st.message(), "run as root on the node"};
  }
  std::vector<ForeignProgram> found;
  int veths = 0;
  for (const auto& l : links) {
    if (l.kind != "veth") continue;
    veths++;
    agent::bpf::TcxQueryResult q;
    if (agent::bpf::QueryTcxIngress(l.ifindex, &q).ok()) {
      for (uint32_t id : q.prog_ids) {
        std::string name = ProgName(id);
        if (name != kOurProgram && name != "zm_capture_twin") found.push_back({l.name, "tcx program " + name, 0});
      }
    }
    for (const char* dir : {"ingress", "egress"}) {
      std::string cmd = "tc filter show dev '" + l.name + "' " + dir + " 2>/dev/null";
      FILE* p = popen(cmd.c_str(), "r");
      if (!p) continue;
      char buf[512];
      std::string text;
      while (fgets(buf, sizeof(buf), p)) text += buf;
      pclose(p);
      for (auto& f : ParseTcFilters(text)) {
        f.ifname = l.name;
        f.what = std::string("tc ") + dir + " " + f.what;
        found.push_back(std::move(f));
      }
    }
  }
  return ConflictVerdict(tcx, veths, found);
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

CheckResult KernelVerdict(const std::string& release) {
  auto v = ParseKernelRelease(release);
  const std::string name = "Linux " + release;
  if (!v) return {"kernel", false, name + ": unrecognised release", "run on Linux 5.10 or newer"};
  auto [major, minor] = *v;
  if (major < 5 || (major == 5 && minor < 10)) {
    return {"kernel", false, name + " is older than 5.10, the oldest kernel zeromesh supports",
            "use a node image with Linux 5.10 or newer (the capture program needs bpf_sk_assign from tc, BTF and "
            "the verifier of 5.10)"};
  }
  if (major < 6 || (major == 6 && minor < 6)) {
    return {"kernel", true, name + ": supported with tc (clsact) filters; tcx needs 6.6", ""};
  }
  return {"kernel", true, name + ": tcx", ""};
}

// `tc filter show` text, grouped by priority: each "filter protocol P pref N KIND ..." line belongs to the filter
// instance at N; an instance whose only entry is ours (handle 0x7a6d) is left out. A priority blocks ours (tc mode)
// unless its filters are bpf for every protocol, as ours: the kernel keeps one kind and protocol per priority.
std::vector<ForeignProgram> ParseTcFilters(const std::string& text) {
  struct Group {
    std::string kind, protocol;
    bool foreign = false, seen_ours = false;
  };
  std::map<uint32_t, Group> groups;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("filter ", 0) != 0) continue;
    std::istringstream words(line);
    std::string w, kind, protocol, handle;
    uint32_t pref = 0;
    while (words >> w) {
      if (w == "protocol") {
        words >> protocol;
      } else if (w == "pref" && words >> w) {
        pref = static_cast<uint32_t>(std::strtoul(w.c_str(), nullptr, 10));
        words >> kind;
      } else if (w == "handle" || w == "fh") {
        words >> handle;
      }
    }
    if (pref == 0) continue;
    Group& g = groups[pref];
    g.kind = kind;
    g.protocol = protocol;
    if (handle == "0x7a6d") {
      g.seen_ours = true;
    } else if (!handle.empty() || kind != "bpf") {
      g.foreign = true;  // an entry of another filter (u32 and others print their header without a handle too)
    }
  }
  std::vector<ForeignProgram> out;
  for (const auto& [pref, g] : groups) {
    if (!g.foreign && g.seen_ours) continue;
    if (!g.foreign && g.kind == "bpf") continue;  // only a header line
    out.push_back({"", g.kind + " filter (pref " + std::to_string(pref) + ", protocol " + g.protocol + ")",
                   g.kind == "bpf" && g.protocol == "all" ? 0u : pref});
  }
  return out;
}

CheckResult ConflictVerdict(bool tcx, int veths, const std::vector<ForeignProgram>& found) {
  const std::string name = "conflicting programs";
  if (found.empty()) return {name, true, std::to_string(veths) + " veth(s), no foreign tc/tcx programs", ""};
  std::string list, taken;
  for (const auto& f : found) {
    list += (list.empty() ? "" : "; ") + f.ifname + ": " + f.what;
    if (f.blocked_pref == agent::bpf::kTcDefaultPriority) taken += (taken.empty() ? "" : ", ") + f.ifname;
  }
  // Without tcx our filters need tc priority 1 on every veth: another filter there can refuse ours (other kind).
  if (!tcx && !taken.empty()) {
    return {name, false, list + " (tc priority 1 taken on " + taken + ")",
            "the agent's filters use tc priority 1 on kernels without tcx: move the other filters, or set the agent's "
            "--tc-priority (chart: agent.bpf.tcPriority) to a free priority lower than theirs"};
  }
  return {name, true,
          list + " - coexisting: ours runs first and passes on what it does not act on (docs/compatibility.md)", ""};
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
  bool tcx = false;
  out.push_back(TcxCheck(&tcx));
  out.push_back(CapsCheck());
  out.push_back(ConflictsCheck(tcx));
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
