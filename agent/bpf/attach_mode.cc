#include "agent/bpf/attach_mode.h"

#include "agent/bpf/tcx.h"

namespace zm::agent::bpf {

std::optional<AttachMode> ParseAttachMode(std::string_view s) {
  if (s == "auto") return AttachMode::kAuto;
  if (s == "tcx") return AttachMode::kTcx;
  if (s == "tc") return AttachMode::kTc;
  return std::nullopt;
}

const char* AttachModeName(AttachMode m) {
  switch (m) {
    case AttachMode::kTcx:
      return "tcx";
    case AttachMode::kTc:
      return "tc";
    default:
      return "auto";
  }
}

AttachMode ResolveAttachMode(AttachMode requested, std::string* why) {
  if (requested != AttachMode::kAuto) {
    *why = std::string("--attach-mode ") + AttachModeName(requested);
    return requested;
  }
  TcxQueryResult q;
  Status s = QueryTcxIngress(1, &q);  // lo always exists; a kernel without tcx rejects the attach type (EINVAL)
  if (s.ok()) {
    *why = "the kernel has tcx";
    return AttachMode::kTcx;
  }
  *why = "no tcx on this kernel (" + s.message() + "): clsact fallback";
  return AttachMode::kTc;
}

}  // namespace zm::agent::bpf
