// `meshctl check`: preflight of the local node (run it where mesh-agent will run: the node's network namespace, as
// root). Kernel >= 6.6 (tcx), BTF, cgroup v2, bpffs, tcx support, capabilities, and no foreign tc/tcx programs on
// veths (they would run before or instead of zeromesh's capture program).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

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

std::vector<CheckResult> RunLocalChecks();
// {healthy, problems: [{message, hint}], checks: [{name, ok, detail, hint}]}
nlohmann::json ChecksJson(const std::vector<CheckResult>& checks);
std::string RenderChecks(const nlohmann::json& j);

}  // namespace zm::meshctl
