// The controller's metrics (names, bounded CSR-denial reasons, push latency) and its admin endpoints.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "controller/admin/admin_endpoints.h"
#include "controller/metrics/controller_metrics.h"

namespace zm::ctrl {
namespace {

std::pair<int, std::string> Get(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return {0, ""};
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  if (resp.size() < 12) return {0, ""};
  auto body = resp.find("\r\n\r\n");
  return {std::stoi(resp.substr(9, 3)), body == std::string::npos ? "" : resp.substr(body + 4)};
}

TEST(ControllerMetrics, CountsByBoundedReason) {
  ControllerMetrics m;
  m.CsrSigned();
  m.CsrSigned();
  m.CsrDenied(CsrDenial::kNodeNotAuthorized);
  m.ManifestRejected();
  m.WatchRestarted("manifests");
  m.PushSent();
  m.PushAcked(0.02);
  m.PushNacked();
  std::string text = m.Render();
  EXPECT_NE(text.find("zeromesh_csr_signed_total 2"), std::string::npos) << text;
  EXPECT_NE(text.find("zeromesh_csr_denied_total{reason=\"node_not_authorized\"} 1"), std::string::npos) << text;
  // Every reason is exported from the start, at zero.
  EXPECT_NE(text.find("zeromesh_csr_denied_total{reason=\"unauthenticated\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("zeromesh_controller_manifest_rejections_total 1"), std::string::npos);
  EXPECT_NE(text.find("zeromesh_controller_watch_restarts_total{source=\"manifests\"} 1"), std::string::npos);
  EXPECT_NE(text.find("zeromesh_controller_push_latency_seconds_count 1"), std::string::npos);
  EXPECT_NE(text.find("zeromesh_controller_push_latency_seconds_bucket{le=\"0.025\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("zeromesh_controller_config_nacks_total 1"), std::string::npos);
  EXPECT_STREQ(CsrDenialLabel(static_cast<CsrDenial>(kCsrDenialCount - 1)), "ca_error");
}

TEST(ControllerMetrics, RemembersRecentPublishTimes) {
  ControllerMetrics m;
  EXPECT_FALSE(m.PublishedAt(1));
  m.Published(1);
  EXPECT_TRUE(m.PublishedAt(1));
  for (uint64_t v = 2; v < 300; v++) m.Published(v);
  EXPECT_FALSE(m.PublishedAt(1));  // bounded history
  EXPECT_TRUE(m.PublishedAt(299));
}

TEST(ControllerAdmin, RoutesAndReadiness) {
  bool ready = false;
  AdminSources src;
  src.metrics = [] { return std::string("zeromesh_controller_config_version 3\n"); };
  src.not_ready = [&] { return ready ? std::vector<std::string>{} : std::vector<std::string>{"no valid config"}; };
  src.config_dump = [] { return nlohmann::json{{"version", 3}}; };
  AdminEndpoints admin("127.0.0.1:0", "127.0.0.1:0", src);
  std::string error;
  ASSERT_TRUE(admin.Start(&error)) << error;
  auto [code, body] = Get(admin.metrics_port(), "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body, "zeromesh_controller_config_version 3\n");
  EXPECT_EQ(Get(admin.metrics_port(), "/healthz").first, 200);
  auto nr = Get(admin.metrics_port(), "/readyz");
  EXPECT_EQ(nr.first, 503);
  EXPECT_NE(nr.second.find("no valid config"), std::string::npos);
  ready = true;
  EXPECT_EQ(Get(admin.metrics_port(), "/readyz").first, 200);
  EXPECT_EQ(Get(admin.metrics_port(), "/debug/config_dump").first, 404);  // not on the public listener
  auto dump = Get(admin.admin_port(), "/debug/config_dump");
  EXPECT_EQ(dump.first, 200);
  EXPECT_EQ(nlohmann::json::parse(dump.second)["version"], 3);
  admin.Stop();
  AdminEndpoints bad("127.0.0.1:99999", "", src);
  EXPECT_FALSE(bad.Start(&error));
  EXPECT_NE(error.find("metrics"), std::string::npos);
}

}  // namespace
}  // namespace zm::ctrl
