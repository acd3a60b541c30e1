// Minimal rtnetlink plumbing (NETLINK_ROUTE): a socket, a request builder and attribute parsing.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/bpf/status.h"

namespace zm::agent::bpf {

// One netlink message under construction: header, family header (ifinfomsg, rtmsg, fib_rule_hdr...), attributes.
class NlRequest {
 public:
  NlRequest(uint16_t type, uint16_t flags);
  template <typename T>
  void SetFamilyHeader(const T& h) {
    Append(&h, sizeof(h));
  }
  void AddAttr(uint16_t type, const void* data, size_t len);
  void AddU32(uint16_t type, uint32_t v) { AddAttr(type, &v, sizeof(v)); }
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  size_t size() const { return buf_.size(); }

 private:
  void Append(const void* data, size_t len);
  std::vector<uint8_t> buf_;
};

class NetlinkSocket {
 public:
  NetlinkSocket() = default;
  ~NetlinkSocket();
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  // NETLINK_ROUTE in the calling thread's netns, subscribed to `groups` (RTMGRP_* bits), optionally non-blocking.
  Status Open(uint32_t groups, bool nonblocking);
  int fd() const { return fd_; }
  uint32_t NextSeq() { return ++seq_; }
  Status Send(NlRequest& req, uint32_t seq);
  // Sends a request with NLM_F_ACK and waits for its ack. Returns 0 or the negative errno from the kernel,
  // or sets *io_error for local failures.
  int Transact(NlRequest& req, Status* io_error);

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

// Fills table[type] for each attribute in [rta, rta+len); types beyond the table are ignored.
template <size_t N>
void ParseAttrs(const rtattr* rta, int len, std::array<const rtattr*, N>& table) {
  table.fill(nullptr);
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    uint16_t type = rta->rta_type & NLA_TYPE_MASK;
    if (type < N) table[type] = rta;
  }
}

std::string AttrString(const rtattr* rta);  // NUL-terminated string payload, "" if absent

}  // namespace zm::agent::bpf
