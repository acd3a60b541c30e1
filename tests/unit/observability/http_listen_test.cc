// The admin/health/metrics/console HTTP server's listen addresses: IPv4, a single IPv6 address, and "[::]:port" (both
// families on one dual-stack socket, IPv4 alone where the node has no IPv6). Loopback only.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/http/http_server.h"
#include "common/net/ip_addr.h"

namespace zm::http {
namespace {

// One HTTP/1.0 GET to |ip|:|port|: "<status> <body>", or {0, ""} when the connection is refused.
std::pair<int, std::string> Get(const char* ip, uint16_t port, const std::string& path) {
  net::SockAddr to{*net::IpAddr::Parse(ip), port};
  sockaddr_storage ss{};
  socklen_t len = to.ToSockaddr(&ss);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (fd >= 0) close(fd);
    return {0, ""};
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  if (resp.size() < 12) return {0, resp};
  size_t body = resp.find("\r\n\r\n");
  return {std::stoi(resp.substr(9, 3)), body == std::string::npos ? "" : resp.substr(body + 4)};
}

// A file standing in for /proc/sys/net/ipv6/conf/all/disable_ipv6.
std::string Sysctl(const char* value) {
  std::string path = ::testing::TempDir() + "disable_ipv6_" + std::to_string(getpid());
  std::ofstream(path) << value << "\n";
  return path;
}

// A server whose handler answers with the client address it was given.
HttpServer EchoPeer(const std::string& addr) {
  return HttpServer(
      "test", addr,
      [](const HttpRequest& r) {
        return HttpResponse{200, "text/plain", r.remote_addr};
      },
      1024);
}

TEST(HttpListen, ServesOnIpv6Loopback) {
  HttpServer server("test", "[::1]:0", {{"/readyz", [] { return HttpResponse{200, "text/plain", "ready\n"}; }}});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  ASSERT_NE(server.port(), 0);
  EXPECT_EQ(Get("::1", server.port(), "/readyz"), std::make_pair(200, std::string("ready\n")));
  // One IPv6 address means that address only: no IPv4 on the port.
  EXPECT_EQ(Get("127.0.0.1", server.port(), "/readyz").first, 0);
}

TEST(HttpListen, WildcardServesBothFamilies) {
  HttpServer server = EchoPeer("[::]:0");
  server.set_ipv6_disabled_sysctl(Sysctl("0"));
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  ASSERT_NE(server.port(), 0);
  // The IPv4 client is given as IPv4 (not "::ffff:127.0.0.1"), as on an IPv4 listener.
  EXPECT_EQ(Get("127.0.0.1", server.port(), "/"), std::make_pair(200, std::string("127.0.0.1")));
  EXPECT_EQ(Get("::1", server.port(), "/"), std::make_pair(200, std::string("::1")));
}

TEST(HttpListen, WildcardFallsBackToIpv4WithoutIpv6) {
  // IPv6 disabled (sysctl 1) or not in the kernel at all (no sysctl): the server still starts, on IPv4.
  for (std::string sysctl : {Sysctl("1"), ::testing::TempDir() + "no-such-sysctl"}) {
    HttpServer server = EchoPeer("[::]:0");
    server.set_ipv6_disabled_sysctl(sysctl);
    std::string error;
    ASSERT_TRUE(server.Start(&error)) << sysctl << ": " << error;
    EXPECT_EQ(Get("127.0.0.1", server.port(), "/"), std::make_pair(200, std::string("127.0.0.1"))) << sysctl;
    EXPECT_EQ(Get("::1", server.port(), "/").first, 0) << sysctl;
  }
}

TEST(HttpListen, IPv4StaysIpv4Only) {
  HttpServer server = EchoPeer("127.0.0.1:0");
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  EXPECT_EQ(Get("127.0.0.1", server.port(), "/"), std::make_pair(200, std::string("127.0.0.1")));
  EXPECT_EQ(Get("::1", server.port(), "/").first, 0);
}

TEST(HttpListen, ListenAddressForms) {
  std::string error;
  for (const char* good : {"0.0.0.0:15020", "127.0.0.1:0", "[::]:15021", "[::1]:0", "[fd00::1]:65535"}) {
    EXPECT_TRUE(ValidListenAddr(good, &error)) << good << ": " << error;
  }
  for (const char* bad : {"::1:80", "fd00::1:80", "[::1]", "[::1]:", "[::1]:65536", "[127.0.0.1]:80", "[]:80",
                          "[fe80::1%eth0]:80", "+15020", "[::1]:80,[::]:81", "[::1]:8x", "localhost:80", "[::1:80"}) {
    error.clear();
    EXPECT_FALSE(ValidListenAddr(bad, &error)) << bad;
    EXPECT_EQ(error, std::string("want IPv4:port, [IPv6]:port or [::]:port (both families), got \"") + bad + "\"");
  }
  // Start refuses it with the same words, before civetweb sees it.
  HttpServer server = EchoPeer("[::1]:x");
  EXPECT_FALSE(server.Start(&error));
  EXPECT_NE(error.find("[IPv6]:port"), std::string::npos) << error;
}

TEST(HttpListen, BusyIpv6PortIsAnError) {
  HttpServer first = EchoPeer("[::1]:0");
  std::string error;
  ASSERT_TRUE(first.Start(&error)) << error;
  HttpServer second = EchoPeer("[::1]:" + std::to_string(first.port()));
  EXPECT_FALSE(second.Start(&error));
  EXPECT_NE(error.find("cannot serve on [::1]:"), std::string::npos) << error;
}

}  // namespace
}  // namespace zm::http
