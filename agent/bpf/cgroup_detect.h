// --sockops-cgroup auto: the cgroup v2 directory the kubelet puts every pod under, for the sockmap's sock_ops program
// (agent/bpf/sockmap.h, docs/design.md "sockmap"). Never the root cgroup: that would take the sockets of every
// process of the machine (Sockmap::Init refuses it too).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/bpf/status.h"

namespace zm::agent::bpf {

inline constexpr std::string_view kSockopsCgroupAuto = "auto";

// Mount points of the cgroup2 filesystems in a /proc/self/mountinfo text, in order, each once (octal escapes such
// as \040 decoded). /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid v1/v2 one.
std::vector<std::string> Cgroup2MountPoints(std::string_view mountinfo);

// The kubelet's pod cgroup among the ancestors of this process's cgroup v2 (the "0::" line of a /proc/self/cgroup
// text): "/node1/kubepods/burstable/pod1/c1" -> "/node1/kubepods" (cgroupfs driver under a kubelet cgroupRoot),
// "/kubepods.slice/kubepods-besteffort.slice/..." -> "/kubepods.slice" (systemd driver). Empty when this process is
// not in a pod, or a private cgroup namespace hides its ancestors ("0::/").
std::string KubepodsAncestor(std::string_view proc_cgroup);

// The pod cgroup, looked for under each cgroup2 mount: first the agent pod's own kubepods ancestor (exact wherever
// the kubelet's cgroupRoot puts it), then <mount>/kubepods.slice and <mount>/kubepods (the kubelet's defaults). The
// result must be a non-root cgroup v2 directory (it has cgroup.type). Otherwise an error saying what was looked for
// where.
Status DetectPodCgroup(std::string_view mountinfo, std::string_view proc_cgroup, std::string* out);
// The same with /proc/self/mountinfo and /proc/self/cgroup.
Status DetectPodCgroup(std::string* out);

}  // namespace zm::agent::bpf
