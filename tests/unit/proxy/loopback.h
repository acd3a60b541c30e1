// Loopback helpers for proxy tests: an echo server that records client addresses, client connects from a chosen
// 127.0.0.x source, and byte pumping with timeouts.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/net/ip_addr.h"

namespace zm::testing {

net::IpAddr Ip(const char* s);  // either family; throws on a typo

// A listening TCP socket on ip (either family), port chosen by the kernel (*port); throws when it cannot bind.
int Listen(const char* ip, uint16_t* port, int backlog = 16);

// Echoes every byte back; on EOF half-closes its side. One thread per connection.
class EchoServer {
 public:
  explicit EchoServer(const char* ip);
  ~EchoServer();
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::vector<std::string> peers();  // "ip" of every accepted client

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<std::string> peers_;
  std::vector<std::thread> conns_;
  std::thread thread_;
};

// Blocking TCP connect from |src| (bound, port 0) to dst:port, both of one family; -1 on failure. Sets a receive
// timeout.
int ConnectFrom(const char* src, const char* dst, uint16_t port, int timeout_ms = 10000);

// Sends |data| from a helper thread while reading everything back until EOF; returns what was read.
// |half_close|: shutdown(SHUT_WR) after the last byte.
std::string Exchange(int fd, const std::string& data, bool half_close = true);

// True when the peer closes or resets the connection within |timeout_ms| without sending anything.
bool ClosedWithoutData(int fd, int timeout_ms);

std::string RandomBytes(size_t n, uint32_t seed);

}  // namespace zm::testing
