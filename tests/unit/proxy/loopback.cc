#include "tests/unit/proxy/loopback.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <stdexcept>

namespace zm::testing {

net::IpAddr Ip(const char* s) {
  auto ip = net::IpAddr::Parse(s);
  if (!ip) throw std::runtime_error(std::string("bad ip ") + s);
  return *ip;
}

int Listen(const char* ip, uint16_t* port, int backlog) {
  sockaddr_storage sa{};
  socklen_t len = net::SockAddr{Ip(ip), 0}.ToSockaddr(&sa);
  int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(fd, backlog) != 0) {
    close(fd);
    throw std::runtime_error(std::string("bind/listen on ") + ip);
  }
  len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = net::SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&sa), len)->port;
  return fd;
}

EchoServer::EchoServer(const char* ip) {
  fd_ = Listen(ip, &port_, 1024);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      sockaddr_storage peer{};
      socklen_t plen = sizeof(peer);
      int c = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
      if (c < 0) continue;
      auto from = net::SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&peer), plen);
      {
        std::lock_guard<std::mutex> l(mu_);
        peers_.push_back(from ? from->ip.ToString() : "?");
      }
      ++accepted_;
      conns_.emplace_back([c] {
        char data[65536];
        while (true) {
          ssize_t n = read(c, data, sizeof(data));
          if (n <= 0) break;
          for (ssize_t off = 0; off < n;) {
            ssize_t w = send(c, data + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
            if (w <= 0) {
              close(c);
              return;
            }
            off += w;
          }
        }
        shutdown(c, SHUT_WR);
        // Wait for the peer's close so the FIN is not turned into a reset by unread data.
        while (read(c, data, sizeof(data)) > 0) {
        }
        close(c);
      });
    }
  });
}

EchoServer::~EchoServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
  for (auto& t : conns_) t.join();
}

std::vector<std::string> EchoServer::peers() {
  std::lock_guard<std::mutex> l(mu_);
  return peers_;
}

int ConnectFrom(const char* src, const char* dst, uint16_t port, int timeout_ms) {
  sockaddr_storage s{};
  socklen_t slen = net::SockAddr{Ip(src), 0}.ToSockaddr(&s);
  int fd = socket(s.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&s), slen) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_storage d{};
  socklen_t dlen = net::SockAddr{Ip(dst), port}.ToSockaddr(&d);
  if (connect(fd, reinterpret_cast<sockaddr*>(&d), dlen) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string Exchange(int fd, const std::string& data, bool half_close) {
  std::thread writer([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    if (half_close) shutdown(fd, SHUT_WR);
  });
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  writer.join();
  return out;
}

bool ClosedWithoutData(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN);
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace zm::testing
