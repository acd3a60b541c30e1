// Test-only TCP helpers with bounded waits.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace zm::agent::bpf::testing {

struct Endpoint {
  std::string ip;
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

Fd TcpSocket();  // in the calling thread's netns
// Listener on ip:port; transparent = IP_TRANSPARENT (the proxy's listeners).
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
