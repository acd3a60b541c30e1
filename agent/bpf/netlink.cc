#include "agent/bpf/netlink.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zm::agent::bpf {

NlRequest::NlRequest(uint16_t type, uint16_t flags) : buf_(NLMSG_HDRLEN, 0) {
  nlmsghdr* h = header();
  h->nlmsg_type = type;
  h->nlmsg_flags = flags;
  h->nlmsg_len = NLMSG_HDRLEN;
}

void NlRequest::Append(const void* data, size_t len) {
  size_t off = buf_.size();
  buf_.resize(off + NLMSG_ALIGN(len), 0);
  std::memcpy(buf_.data() + off, data, len);
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NlRequest::AddAttr(uint16_t type, const void* data, size_t len) {
  rtattr a{};
  a.rta_type = type;
  a.rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  size_t off = buf_.size();
  buf_.resize(off + RTA_SPACE(len), 0);
  std::memcpy(buf_.data() + off, &a, sizeof(a));
  std::memcpy(buf_.data() + off + RTA_LENGTH(0), data, len);
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

NetlinkSocket::~NetlinkSocket() {
  if (fd_ >= 0) close(fd_);
}

Status NetlinkSocket::Open(uint32_t groups, bool nonblocking) {
  if (fd_ >= 0) return Status::Error("netlink socket already open");
  int type = SOCK_RAW | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  int fd = socket(AF_NETLINK, type, NETLINK_ROUTE);
  if (fd < 0) return Status::Errno("socket(AF_NETLINK, NETLINK_ROUTE)", errno);
  int rcvbuf = 4 << 20;  // link storms (many pods at once) must not overflow the queue
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return Status::Errno("bind netlink socket", err);
  }
  fd_ = fd;
  return Status::Ok();
}

Status NetlinkSocket::Send(NlRequest& req, uint32_t seq) {
  req.header()->nlmsg_seq = seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t n = sendto(fd_, req.header(), req.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  if (n < 0) return Status::Errno("netlink send", errno);
  if (static_cast<size_t>(n) != req.size()) return Status::Error("netlink send: short write");
  return Status::Ok();
}

int NetlinkSocket::Transact(NlRequest& req, Status* io_error) {
  *io_error = Status::Ok();
  req.header()->nlmsg_flags |= NLM_F_ACK;
  const uint32_t seq = NextSeq();
  if (Status s = Send(req, seq); !s.ok()) {
    *io_error = s;
    return 0;
  }
  alignas(nlmsghdr) char buf[16384];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *io_error = Status::Errno("netlink recv", errno);
      return 0;
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
      auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
      return e->error;  // 0 = ack
    }
  }
}

std::string AttrString(const rtattr* rta) {
  if (!rta) return {};
  const char* p = static_cast<const char*>(RTA_DATA(rta));
  size_t len = RTA_PAYLOAD(rta);
  return std::string(p, strnlen(p, len));
}

}  // namespace zm::agent::bpf
