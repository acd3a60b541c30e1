#include "agent/bpf/cgroup_detect.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace zm::agent::bpf {
namespace {

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string_view oct = s.substr(i + 1, 3);
      if (std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out.push_back(static_cast<char>((oct[0] - '0') * 64 + (oct[1] - '0') * 8 + (oct[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool IsNonRootCgroup2(const std::string& dir) {
  struct stat st {};
  return stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && access((dir + "/cgroup.type").c_str(), F_OK) == 0;
}

Status ReadFile(const char* path, std::string* out) {
  std::ifstream f(path);
  if (!f) return Status::Error(std::string("cannot read ") + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return Status::Ok();
}

}  // namespace

std::vector<std::string> Cgroup2MountPoints(std::string_view mountinfo) {
  std::vector<std::string> out;
  for (std::string_view line : Split(mountinfo, '\n')) {
    // "<id> <parent> <major:minor> <root> <mount point> <options> [optional fields...] - <fstype> <source> <opts>"
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const std::vector<std::string_view> head = Split(line.substr(0, dash), ' ');
    const std::vector<std::string_view> tail = Split(line.substr(dash + 3), ' ');
    if (head.size() < 5 || tail.empty() || tail[0] != "cgroup2") continue;
    std::string point = Unescape(head[4]);
    if (std::find(out.begin(), out.end(), point) == out.end()) out.push_back(std::move(point));
  }
  return out;
}

std::string KubepodsAncestor(std::string_view proc_cgroup) {
  for (std::string_view line : Split(proc_cgroup, '\n')) {
    if (line.substr(0, 3) != "0::") continue;
    const std::string_view path = line.substr(3);
    std::string prefix;
    for (std::string_view part : Split(path, '/')) {
      if (part.empty()) continue;
      prefix += "/";
      prefix += part;
      if (part == "kubepods" || part == "kubepods.slice") return prefix;
    }
  }
  return "";
}

Status DetectPodCgroup(std::string_view mountinfo, std::string_view proc_cgroup, std::string* out) {
  const std::vector<std::string> mounts = Cgroup2MountPoints(mountinfo);
  if (mounts.empty()) {
    return Status::Error(
        "no cgroup2 filesystem is mounted (sockmap needs cgroup v2: on a hybrid host it is usually "
        "/sys/fs/cgroup/unified; mount the host's /sys/fs/cgroup into the agent)");
  }
  const std::string own = KubepodsAncestor(proc_cgroup);
  std::string looked;
  for (const std::string& m : mounts) {
    const std::string base = m == "/" ? "" : m;
    std::vector<std::string> candidates;
    if (!own.empty()) candidates.push_back(base + own);
    candidates.push_back(base + "/kubepods.slice");
    candidates.push_back(base + "/kubepods");
    for (const std::string& c : candidates) {
      if (IsNonRootCgroup2(c)) {
        *out = c;
        return Status::Ok();
      }
      looked += (looked.empty() ? "" : ", ") + c;
    }
  }
  return Status::Error("no kubelet pod cgroup found (looked for " + looked +
                       "); give its cgroup v2 directory with --sockops-cgroup PATH (chart: agent.sockmap.cgroup)");
}

Status DetectPodCgroup(std::string* out) {
  std::string mountinfo, proc_cgroup;
  if (Status s = ReadFile("/proc/self/mountinfo", &mountinfo); !s.ok()) return s;
  if (Status s = ReadFile("/proc/self/cgroup", &proc_cgroup); !s.ok()) return s;
  return DetectPodCgroup(mountinfo, proc_cgroup, out);
}

}  // namespace zm::agent::bpf
