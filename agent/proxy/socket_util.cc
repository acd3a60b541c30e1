#include "agent/proxy/socket_util.h"

#include "agent/state/ipv4.h"

#include <arpa/inet.h>
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

}  // namespace

int MakeListener(in_addr_t addr, uint16_t port, bool transparent, uint32_t mark, std::string* error) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = Errno("socket");
    return -1;
  }
  if (!SetMark(fd, mark, error)) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (transparent && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) != 0) {
    *error = Errno("setsockopt(IP_TRANSPARENT)");
    close(fd);
    return -1;
  }
  sockaddr_in sa = MakeAddr(addr, port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    *error = Errno(("bind " + AddrToString(sa)).c_str());
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
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin_port);
}

int StartConnect(const sockaddr_in& dst, in_addr_t src_ip, SourceBind bind_mode, uint32_t mark, std::string* error) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = Errno("socket");
    return -1;
  }
  if (!SetMark(fd, mark, error)) return -1;
  int one = 1;
  if (bind_mode != SourceBind::kNone) {
    if (bind_mode == SourceBind::kTransparent && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) != 0) {
      *error = Errno("setsockopt(IP_TRANSPARENT)");
      close(fd);
      return -1;
    }
    // Many flows share one source IP: let the kernel pick the port at connect time, not at bind time.
    setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sockaddr_in src = MakeAddr(src_ip, 0);
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
      *error = Errno(("bind source " + IpToString(src_ip)).c_str());
      close(fd);
      return -1;
    }
  }
  TuneStream(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst)) != 0 && errno != EINPROGRESS) {
    *error = Errno(("connect " + AddrToString(dst)).c_str());
    close(fd);
    return -1;
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

std::string IpToString(in_addr_t ip) {
  return agent::Ipv4ToString(ip);
}

std::string AddrToString(const sockaddr_in& a) {
  return IpToString(a.sin_addr.s_addr) + ":" + std::to_string(ntohs(a.sin_port));
}

sockaddr_in MakeAddr(in_addr_t ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = ip;
  sa.sin_port = htons(port);
  return sa;
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace zm::proxy
