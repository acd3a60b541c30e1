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

// The BPF_LINK_CREATE member of union bpf_attr as of Linux 6.6, with its tcx union member (at offset 16).
struct LinkCreateTcxAttr {
  uint32_t prog_fd;
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t flags;
  uint32_t relative_fd_or_id;  // 0: no relative object (BPF_F_BEFORE alone = first, BPF_F_AFTER alone = last)
  uint32_t pad;
  uint64_t expected_revision;  // 0: no check
};
static_assert(offsetof(LinkCreateTcxAttr, relative_fd_or_id) == 16);
static_assert(sizeof(LinkCreateTcxAttr) == 32);

const char* TcxName(int attach_type) {
  return attach_type == kAttachTcxEgress ? "tcx egress" : "tcx ingress";
}

}  // namespace

Status AttachTcx(int prog_fd, uint32_t ifindex, int attach_type, uint32_t flags, int* link_fd) {
  LinkCreateTcxAttr attr{};
  attr.prog_fd = static_cast<uint32_t>(prog_fd);
  attr.target_ifindex = ifindex;
  attr.attach_type = static_cast<uint32_t>(attach_type);
  attr.flags = flags;
  long fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
  if (fd < 0) {
    return Status::Errno(std::string("BPF_LINK_CREATE(") + TcxName(attach_type) + ", ifindex " +
                             std::to_string(ifindex) + ", flags " + std::to_string(flags) + ")",
                         errno);
  }
  *link_fd = static_cast<int>(fd);
  return Status::Ok();
}

Status AttachTcxIngress(int prog_fd, uint32_t ifindex, int* link_fd) {
  return AttachTcx(prog_fd, ifindex, kAttachTcxIngress, kTcxBefore, link_fd);
}

Status AttachTcxEgress(int prog_fd, uint32_t ifindex, int* link_fd) {
  return AttachTcx(prog_fd, ifindex, kAttachTcxEgress, kTcxBefore, link_fd);
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
  return QueryTcx(ifindex, kAttachTcxIngress, out);
}

Status QueryTcxEgress(uint32_t ifindex, TcxQueryResult* out) {
  return QueryTcx(ifindex, kAttachTcxEgress, out);
}

Status QueryTcx(uint32_t ifindex, int attach_type, TcxQueryResult* out) {
  constexpr uint32_t kMax = 64;
  uint32_t prog_ids[kMax] = {};
  uint32_t link_ids[kMax] = {};
  ProgQueryAttr attr{};
  attr.target_ifindex = ifindex;
  attr.attach_type = static_cast<uint32_t>(attach_type);
  attr.prog_ids = reinterpret_cast<uintptr_t>(prog_ids);
  attr.link_ids = reinterpret_cast<uintptr_t>(link_ids);
  attr.count = kMax;
  if (syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) != 0) {
    return Status::Errno(
        std::string("BPF_PROG_QUERY(") + TcxName(attach_type) + ", ifindex " + std::to_string(ifindex) + ")", errno);
  }
  uint32_t n = attr.count < kMax ? attr.count : kMax;
  out->prog_ids.assign(prog_ids, prog_ids + n);
  out->link_ids.assign(link_ids, link_ids + n);
  return Status::Ok();
}

}  // namespace zm::agent::bpf
