#include "tests/integration/bpf/sock_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace zm::agent::bpf::testing {
namespace {

sockaddr_in ToSockaddr(const Endpoint& e) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(e.port);
  inet_pton(AF_INET, e.ip.c_str(), &a.sin_addr);
  return a;
}

Endpoint FromSockaddr(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return Endpoint{buf, ntohs(a.sin_port)};
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

Fd TcpSocket() {
  return Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

Fd Listen(const std::string& ip, uint16_t port, bool transparent) {
  Fd fd = TcpSocket();
  if (!fd.valid()) return fd;
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (transparent && setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) != 0) return Fd();
  sockaddr_in a = ToSockaddr(Endpoint{ip, port});
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return Fd();
  if (listen(fd.get(), 64) != 0) return Fd();
  return fd;
}

int ConnectTimeout(int fd, const Endpoint& to, int timeout_ms) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  sockaddr_in a = ToSockaddr(to);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
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
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return FromSockaddr(a);
}

Endpoint PeerAddr(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return FromSockaddr(a);
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
