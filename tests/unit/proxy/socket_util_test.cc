// StartConnect keeps the client's source port when it can, and takes any port when that one is in use here.
#include "agent/proxy/socket_util.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace zm::proxy {
namespace {

net::IpAddr Loopback(const char* text) {
  auto ip = net::IpAddr::Parse(text);
  EXPECT_TRUE(ip.has_value()) << text;
  return ip.value_or(net::IpAddr{});
}

// Waits for the non-blocking connect to finish; the local address it got.
net::SockAddr Connected(int fd) {
  pollfd p{fd, POLLOUT, 0};
  EXPECT_EQ(poll(&p, 1, 2000), 1);
  EXPECT_EQ(ConnectResult(fd), 0);
  net::SockAddr local;
  EXPECT_TRUE(LocalAddr(fd, &local));
  return local;
}

// A port of 127.0.0.1 nothing uses now (bound, then released).
uint16_t FreePort() {
  std::string error;
  int fd = MakeListener(Loopback("127.0.0.1"), 0, false, 0, &error);
  EXPECT_GE(fd, 0) << error;
  uint16_t port = LocalPort(fd);
  close(fd);
  return port;
}

TEST(StartConnect, KeepsTheClientsPortAndFallsBackWhenItIsTaken) {
  std::string error;
  int listener = MakeListener(Loopback("127.0.0.1"), 0, false, 0, &error);
  ASSERT_GE(listener, 0) << error;
  const net::SockAddr dst{Loopback("127.0.0.1"), LocalPort(listener)};
  const net::IpAddr src = Loopback("127.0.0.2");

  const uint16_t wanted = FreePort();
  int fd = StartConnect(dst, src, SourceBind::kPlain, 0, &error, wanted);
  ASSERT_GE(fd, 0) << error;
  net::SockAddr local = Connected(fd);
  EXPECT_EQ(local.ip.ToString(), "127.0.0.2");
  EXPECT_EQ(local.port, wanted) << "the client's port was not kept";

  // The same 4-tuple again while the first connection holds it: connected anyway, from another port.
  int again = StartConnect(dst, src, SourceBind::kPlain, 0, &error, wanted);
  ASSERT_GE(again, 0) << error;
  local = Connected(again);
  EXPECT_EQ(local.ip.ToString(), "127.0.0.2");
  EXPECT_NE(local.port, wanted);

  // The port bound by a local socket without SO_REUSEADDR: another port too.
  int holder = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(0x7f000002);
  const uint16_t held = FreePort();
  at.sin_port = htons(held);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&at), sizeof(at)), 0);
  int third = StartConnect(dst, src, SourceBind::kPlain, 0, &error, held);
  ASSERT_GE(third, 0) << error;
  EXPECT_NE(Connected(third).port, held);

  // Without a source bind the port is the kernel's choice whatever was asked.
  int plain = StartConnect(dst, src, SourceBind::kNone, 0, &error, wanted);
  ASSERT_GE(plain, 0) << error;
  EXPECT_NE(Connected(plain).port, wanted);

  for (int f : {fd, again, third, plain, holder, listener}) close(f);
}

}  // namespace
}  // namespace zm::proxy
