#include "agent/bpf/tc_clsact.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <string>

namespace zm::agent::bpf {
namespace {

bpf_tc_hook Hook(uint32_t ifindex, TcDirection dir) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = dir == TcDirection::kEgress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
  return hook;
}

std::string Where(uint32_t ifindex, TcDirection dir) {
  return std::string("tc ") + TcDirectionName(dir) + " of ifindex " + std::to_string(ifindex);
}

thread_local int expected_tc_errors = 0;

struct ExpectTcErrors {
  ExpectTcErrors() { ++expected_tc_errors; }
  ~ExpectTcErrors() { --expected_tc_errors; }
  ExpectTcErrors(const ExpectTcErrors&) = delete;
  ExpectTcErrors& operator=(const ExpectTcErrors&) = delete;
};

bool Gone(int err) {  // no filter, no clsact qdisc, or no interface
  return err == ENOENT || err == EINVAL || err == ENODEV;
}

}  // namespace

bool InExpectedTcError() {
  return expected_tc_errors > 0;
}

const char* TcDirectionName(TcDirection dir) {
  return dir == TcDirection::kEgress ? "egress" : "ingress";
}

Status AttachClsact(int prog_fd, uint32_t ifindex, TcDirection dir, uint32_t priority) {
  bpf_tc_hook hook = Hook(ifindex, dir);
  // Creates the clsact qdisc (both hooks) unless one is there: shared with other tc users, so never destroyed by us.
  int created = 0;
  {
    ExpectTcErrors quiet;
    created = bpf_tc_hook_create(&hook);
  }
  if (int err = created; err != 0 && err != -EEXIST) {
    return Status::Errno("creating the clsact qdisc for " + Where(ifindex, dir), err);
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
              .priority = priority);
  if (int err = bpf_tc_attach(&hook, &opts); err != 0) {
    return Status::Errno("attaching a cls_bpf filter (prio " + std::to_string(priority) + ", handle 0x7a6d) at " +
                             Where(ifindex, dir) +
                             (err == -EINVAL ? " (another filter at this priority with another protocol or kind? "
                                               "choose another with --tc-priority)"
                                             : ""),
                         err);
  }
  return Status::Ok();
}

Status DetachClsact(uint32_t ifindex, TcDirection dir, uint32_t priority) {
  bpf_tc_hook hook = Hook(ifindex, dir);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = priority);
  ExpectTcErrors quiet;
  if (int err = bpf_tc_detach(&hook, &opts); err != 0 && !Gone(-err)) {
    return Status::Errno("removing our filter at " + Where(ifindex, dir), err);
  }
  return Status::Ok();
}

Status QueryClsact(uint32_t ifindex, TcDirection dir, uint32_t priority, uint32_t* prog_id) {
  *prog_id = 0;
  bpf_tc_hook hook = Hook(ifindex, dir);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = priority);
  ExpectTcErrors quiet;
  if (int err = bpf_tc_query(&hook, &opts); err != 0) {
    if (Gone(-err)) return Status::Ok();
    return Status::Errno("querying our filter at " + Where(ifindex, dir), err);
  }
  *prog_id = opts.prog_id;
  return Status::Ok();
}

}  // namespace zm::agent::bpf
