#include "tests/integration/bpf/sock_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/net/ip_addr.h"

namespace zm::agent::bpf::testing {
namespace {

// Either family, by the address text ("10.0.0.1", "fd00::1"); the length for bind/connect, 0 if unparsable.
socklen_t ToSockaddr(const Endpoint& e, sockaddr_storage* out) {
  auto ip = net::IpAddr::Parse(e.ip);
  return ip ? net::SockAddr{*ip, e.port}.ToSockaddr(out) : 0;
}

Endpoint FromSockaddr(const sockaddr_storage& a, socklen_t len) {
  auto sa = net::SockAddr::FromSockaddr(reinterpret_cast<const sockaddr*>(&a), len);
  return sa ? Endpoint{sa->ip.ToString(), sa->port} : Endpoint{};
}

Endpoint Name(int fd, int (*get)(int, sockaddr*, socklen_t*)) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  if (get(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return Endpoint{};
  return FromSockaddr(a, len);
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}
Fd::~Fd() {
  reset();
}
int Fd::release() {
  int f = fd_;
  fd_ = -1;
  return f;
}
void Fd::reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Fd TcpSocket(int family) {
  return Fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

Fd Listen(const std::string& ip, uint16_t port, bool transparent) {
  sockaddr_storage a{};
  const socklen_t len = ToSockaddr(Endpoint{ip, port}, &a);
  if (len == 0) return Fd();
  const bool v6 = a.ss_family == AF_INET6;
  Fd fd = TcpSocket(a.ss_family);
  if (!fd.valid()) return fd;
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // IPv6 listeners take IPv6 only, as the proxy's: the IPv4 ones on the same port stay separate sockets.
  if (v6 && setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) return Fd();
  if (transparent &&
      setsockopt(fd.get(), v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof(one)) != 0) {
    return Fd();
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) return Fd();
  if (listen(fd.get(), 64) != 0) return Fd();
  return fd;
}

int ConnectTimeout(int fd, const Endpoint& to, int timeout_ms) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  sockaddr_storage a{};
  const socklen_t len = ToSockaddr(to, &a);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), len);
  int err = 0;
  if (rc != 0 && errno != EINPROGRESS) {
    err = errno;
  } else if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0) {
      err = ETIMEDOUT;
    } else {
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
  }
  fcntl(fd, F_SETFL, flags);
  return err;
}

Fd AcceptTimeout(int listen_fd, int timeout_ms) {
  pollfd p{listen_fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return Fd();
  return Fd(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
}

Endpoint LocalAddr(int fd) {
  return Name(fd, getsockname);
}

Endpoint PeerAddr(int fd) {
  return Name(fd, getpeername);
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string RecvSome(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return {};
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace zm::agent::bpf::testing
