#include "agent/proxy/socket_util.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zm::proxy {
namespace {
std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}
// Closes |fd| on failure.
bool SetMark(int fd, uint32_t mark, std::string* error) {
  if (mark == 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0) return true;
  *error = Errno("setsockopt(SO_MARK)");
  close(fd);
  return false;
}

// IP_TRANSPARENT for an IPv4 socket, IPV6_TRANSPARENT for an IPv6 one. Closes |fd| on failure.
bool SetTransparent(int fd, int family, std::string* error) {
  int one = 1;
  bool v6 = family == AF_INET6;
  if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof(one)) == 0) {
    return true;
  }
  *error = Errno(v6 ? "setsockopt(IPV6_TRANSPARENT)" : "setsockopt(IP_TRANSPARENT)");
  close(fd);
  return false;
}

}  // namespace

int MakeListener(const net::IpAddr& addr, uint16_t port, bool transparent, uint32_t mark, std::string* error,
                 int* err_no) {
  const int family = addr.is_v6() ? AF_INET6 : AF_INET;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (err_no != nullptr) *err_no = errno;
    *error = Errno("socket");
    return -1;
  }
  if (!SetMark(fd, mark, error)) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
    *error = Errno("setsockopt(IPV6_V6ONLY)");
    close(fd);
    return -1;
  }
  if (transparent && !SetTransparent(fd, family, error)) return -1;
  net::SockAddr at{addr, port};
  sockaddr_storage sa{};
  socklen_t len = at.ToSockaddr(&sa);
  if (len == 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    if (err_no != nullptr) *err_no = errno;
    *error = Errno(("bind " + at.ToString()).c_str());
    close(fd);
    return -1;
  }
  if (listen(fd, 4096) != 0) {
    *error = Errno("listen");
    close(fd);
    return -1;
  }
  return fd;
}

uint16_t LocalPort(int fd) {
  net::SockAddr a;
  return LocalAddr(fd, &a) ? a.port : 0;
}

namespace {

// One attempt of StartConnect: from |src_port|, or a port the kernel picks at connect time when 0. *err_no is the
// errno of a failed bind or connect (the caller may try again without the port).
int ConnectFrom(const net::SockAddr& dst, const sockaddr_storage& to, socklen_t to_len, const net::IpAddr& src_ip,
                uint16_t src_port, SourceBind bind_mode, uint32_t mark, std::string* error, int* err_no) {
  *err_no = 0;
  int fd = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = Errno("socket");
    return -1;
  }
  if (!SetMark(fd, mark, error)) return -1;
  int one = 1;
  if (bind_mode != SourceBind::kNone) {
    if (src_ip.family() != dst.ip.family()) {
      *error = "bind source " + src_ip.ToString() + ": not the family of " + dst.ToString();
      close(fd);
      return -1;
    }
    if (bind_mode == SourceBind::kTransparent && !SetTransparent(fd, to.ss_family, error)) return -1;
    if (src_port == 0) {
      // Many flows share one source IP: let the kernel pick the port at connect time, not at bind time.
      setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    } else {
      // The client's own port: earlier flows of other 4-tuples through it (in TIME_WAIT here) do not block the bind;
      // connect still refuses a 4-tuple that is in use.
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    sockaddr_storage src{};
    net::SockAddr from{src_ip, src_port};
    socklen_t src_len = from.ToSockaddr(&src);
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), src_len) != 0) {
      *err_no = errno;
      *error = Errno(("bind source " + from.ToString()).c_str());
      close(fd);
      return -1;
    }
  }
  TuneStream(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to), to_len) != 0 && errno != EINPROGRESS) {
    *err_no = errno;
    *error = Errno(("connect " + dst.ToString()).c_str());
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int StartConnect(const net::SockAddr& dst, const net::IpAddr& src_ip, SourceBind bind_mode, uint32_t mark,
                 std::string* error, uint16_t src_port) {
  sockaddr_storage to{};
  socklen_t to_len = dst.ToSockaddr(&to);
  if (to_len == 0) {
    *error = "connect: no destination address";
    return -1;
  }
  if (bind_mode == SourceBind::kNone) src_port = 0;
  int err_no = 0;
  int fd = ConnectFrom(dst, to, to_len, src_ip, src_port, bind_mode, mark, error, &err_no);
  // The client's port is taken here (its 4-tuple still in TIME_WAIT from an earlier flow, or the port bound by a
  // local socket): any port will do.
  if (fd < 0 && src_port != 0 && (err_no == EADDRINUSE || err_no == EADDRNOTAVAIL)) {
    fd = ConnectFrom(dst, to, to_len, src_ip, 0, bind_mode, mark, error, &err_no);
  }
  return fd;
}

int ConnectResult(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void TuneStream(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void ResetAndClose(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

bool PeerAddr(int fd, net::SockAddr* out) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return false;
  auto a = net::SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&sa), len);
  if (a) *out = *a;
  return a.has_value();
}

bool LocalAddr(int fd, net::SockAddr* out) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return false;
  auto a = net::SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&sa), len);
  if (a) *out = *a;
  return a.has_value();
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace zm::proxy
