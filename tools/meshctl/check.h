// `meshctl check`: preflight of the local node (run it where mesh-agent will run: the node's network namespace, as
// root). Kernel >= 5.10 (tcx from 6.6, else the tc fallback), BTF, cgroup v2, bpffs, tcx support, capabilities, and
// the other tc/tcx programs on veths (they coexist with ours, except a filter holding our tc priority without tcx).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zm::meshctl {

struct CheckResult {
  std::string name;
  bool ok = false;
  std::string detail;
  std::string hint;  // what to do when !ok
};

// "6.1.0-13-amd64" -> {6, 1}
std::optional<std::pair<int, int>> ParseKernelRelease(const std::string& release);
// The CapEff mask from /proc/<pid>/status text.
std::optional<uint64_t> EffectiveCaps(const std::string& proc_status);

// Where cgroup2 is mounted (/sys/fs/cgroup preferred), from /proc/self/mounts text; "" if nowhere.
std::string Cgroup2Mount(const std::string& mounts);

// "Linux <release>": below 5.10 fails; 5.10..6.5 is supported in tc mode; 6.6+ uses tcx.
CheckResult KernelVerdict(const std::string& release);

struct ForeignProgram {  // a program on a veth that is not ours
  std::string ifname;
  std::string what;           // "tcx program x", "tc ingress u32 filter (pref 1, protocol ip)"
  uint32_t blocked_pref = 0;  // tc filters of another kind or protocol: the priority no bpf filter can join
};
// The filters of `tc filter show` output (ours, handle 0x7a6d, left out); ifname left empty.
std::vector<ForeignProgram> ParseTcFilters(const std::string& text);
// Foreign programs coexist with ours, except (kernels without tcx) a filter at our tc priority.
CheckResult ConflictVerdict(bool tcx, int veths, const std::vector<ForeignProgram>& found);

std::vector<CheckResult> RunLocalChecks();
// {healthy, problems: [{message, hint}], checks: [{name, ok, detail, hint}]}
nlohmann::json ChecksJson(const std::vector<CheckResult>& checks);
std::string RenderChecks(const nlohmann::json& j);

}  // namespace zm::meshctl
