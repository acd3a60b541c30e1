// How the agent hooks its programs to interfaces: tcx links (Linux 6.6+, the default where the kernel has them) or
// cls_bpf filters on a clsact qdisc (older kernels; the same programs, tc_clsact.h). `auto` asks the kernel.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace zm::agent::bpf {

enum class AttachMode { kAuto, kTcx, kTc };

std::optional<AttachMode> ParseAttachMode(std::string_view s);  // "auto" | "tcx" | "tc"
const char* AttachModeName(AttachMode m);                       // "auto" | "tcx" | "tc"

// kAuto becomes kTcx when the kernel answers a tcx query (on lo), else kTc; *why says what decided (for the log).
AttachMode ResolveAttachMode(AttachMode requested, std::string* why);

}  // namespace zm::agent::bpf
