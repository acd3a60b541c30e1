// Test-only TCP helpers with bounded waits.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <ostream>
#include <string>

namespace zm::agent::bpf::testing {

struct Endpoint {
  std::string ip;  // "10.244.1.11" or "fd00:244:1::11" (canonical text, as returned by LocalAddr / PeerAddr)
  uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};
inline std::ostream& operator<<(std::ostream& o, const Endpoint& e) {
  return o << e.ip << ":" << e.port;
}

// RAII fd.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const { return fd_; }
  int release();
  void reset();
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

Fd TcpSocket(int family = AF_INET);  // in the calling thread's netns
// Listener on ip:port of either family; transparent = IP_TRANSPARENT / IPV6_TRANSPARENT (the proxy's listeners). An
// IPv6 listener is IPV6_V6ONLY, as the proxy's.
Fd Listen(const std::string& ip, uint16_t port, bool transparent);
// 0 on success, else errno (ETIMEDOUT when nothing answered in time).
int ConnectTimeout(int fd, const Endpoint& to, int timeout_ms);
// Accepted fd or an invalid Fd after timeout_ms.
Fd AcceptTimeout(int listen_fd, int timeout_ms);
Endpoint LocalAddr(int fd);
Endpoint PeerAddr(int fd);
bool SendAll(int fd, const std::string& data);
std::string RecvSome(int fd, int timeout_ms);  // "" on timeout/EOF

}  // namespace zm::agent::bpf::testing
