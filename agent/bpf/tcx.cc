#include "agent/bpf/tcx.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>

namespace zm::agent::bpf {
namespace {

// struct bpf_link_info up to the tcx member of its union (8-byte aligned, at offset 16).
struct TcxLinkInfoRaw {
  uint32_t type;
  uint32_t id;
  uint32_t prog_id;
  uint32_t pad;
  uint32_t ifindex;
  uint32_t attach_type;
};
static_assert(offsetof(TcxLinkInfoRaw, ifindex) == 16);

// The BPF_PROG_QUERY member of union bpf_attr as of Linux 6.6 (adds link_ids and revision).
struct ProgQueryAttr {
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t query_flags;
  uint32_t attach_flags;
  uint64_t prog_ids;
  uint32_t count;
  uint32_t pad;
  uint64_t prog_attach_flags;
  uint64_t link_ids;
  uint64_t link_attach_flags;
  uint64_t revision;
};
static_assert(sizeof(ProgQueryAttr) == 64);

}  // namespace

namespace {
Status AttachTcx(int prog_fd, uint32_t ifindex, int attach_type, const char* what, int* link_fd) {
  // libbpf 1.1 forwards unknown attach types unchanged; zero opts = append after existing programs.
  int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex), static_cast<enum bpf_attach_type>(attach_type), nullptr);
  if (fd < 0)
    return Status::Errno(std::string("bpf_link_create(") + what + ", ifindex " + std::to_string(ifindex) + ")", fd);
  *link_fd = fd;
  return Status::Ok();
}
}  // namespace

Status AttachTcxIngress(int prog_fd, uint32_t ifindex, int* link_fd) {
  return AttachTcx(prog_fd, ifindex, kAttachTcxIngress, "tcx ingress", link_fd);
}

Status AttachTcxEgress(int prog_fd, uint32_t ifindex, int* link_fd) {
  return AttachTcx(prog_fd, ifindex, kAttachTcxEgress, "tcx egress", link_fd);
}

Status GetLinkInfo(int link_fd, LinkInfo* out) {
  TcxLinkInfoRaw raw{};
  uint32_t len = sizeof(raw);
  if (bpf_obj_get_info_by_fd(link_fd, &raw, &len) != 0) return Status::Errno("bpf link info", errno);
  out->type = raw.type;
  out->id = raw.id;
  out->prog_id = raw.prog_id;
  out->ifindex = raw.type == kLinkTypeTcx ? raw.ifindex : 0;
  out->attach_type = raw.type == kLinkTypeTcx ? raw.attach_type : 0;
  return Status::Ok();
}

Status GetProgId(int prog_fd, uint32_t* id) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return Status::Errno("bpf prog info", errno);
  *id = info.id;
  return Status::Ok();
}

Status QueryTcxIngress(uint32_t ifindex, TcxQueryResult* out) {
  constexpr uint32_t kMax = 64;
  uint32_t prog_ids[kMax] = {};
  uint32_t link_ids[kMax] = {};
  ProgQueryAttr attr{};
  attr.target_ifindex = ifindex;
  attr.attach_type = kAttachTcxIngress;
  attr.prog_ids = reinterpret_cast<uintptr_t>(prog_ids);
  attr.link_ids = reinterpret_cast<uintptr_t>(link_ids);
  attr.count = kMax;
  if (syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) != 0) {
    return Status::Errno("BPF_PROG_QUERY(tcx ingress, ifindex " + std::to_string(ifindex) + ")", errno);
  }
  uint32_t n = attr.count < kMax ? attr.count : kMax;
  out->prog_ids.assign(prog_ids, prog_ids + n);
  out->link_ids.assign(link_ids, link_ids + n);
  return Status::Ok();
}

}  // namespace zm::agent::bpf
