// Admin endpoints: routing, readiness, listen-address checks, and the certificate facts /debug/certs reports.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "agent/admin/admin_server.h"
#include "agent/admin/cert_info.h"
#include "agent/admin/config_dump.h"
#include "tests/unit/proxy/test_certs.h"

namespace zm::admin {
namespace {

// Minimal HTTP/1.0 client over loopback: "<status> <body>".
std::pair<int, std::string> Get(uint16_t port, const std::string& method, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return {0, ""};
  }
  std::string req = method + " " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  if (resp.size() < 12) return {0, resp};
  size_t body = resp.find("\r\n\r\n");
  return {std::stoi(resp.substr(9, 3)), body == std::string::npos ? "" : resp.substr(body + 4)};
}

TEST(AdminServer, RoutesReadinessAndMethods) {
  std::atomic<bool> ready{false};
  AdminSources src;
  src.metrics = [] { return std::string("zeromesh_agent_ready 1\n"); };
  src.readiness = [&] {
    Readiness r;
    r.uplink_attached = r.config_applied = r.links_synced = true;
    r.listeners_in_sockmap = ready.load();
    return r;
  };
  src.config_dump = [] { return nlohmann::json{{"snapshot", nullptr}}; };
  src.certs = [] { return nlohmann::json{{"certificates", nlohmann::json::array()}}; };
  AdminServer server({"127.0.0.1:0", "127.0.0.1:0", ""}, src);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  uint16_t pub = server.metrics_port(), dbg = server.admin_port();
  ASSERT_NE(pub, 0);
  ASSERT_NE(dbg, 0);

  EXPECT_EQ(Get(pub, "GET", "/healthz").first, 200);
  EXPECT_EQ(Get(pub, "GET", "/metrics"), std::make_pair(200, std::string("zeromesh_agent_ready 1\n")));
  auto [status, body] = Get(pub, "GET", "/readyz");
  EXPECT_EQ(status, 503);
  EXPECT_NE(body.find("proxy listeners not in the SOCKMAP"), std::string::npos) << body;
  ready = true;
  EXPECT_EQ(Get(pub, "GET", "/readyz"), std::make_pair(200, std::string("ready\n")));
  EXPECT_EQ(Get(pub, "HEAD", "/readyz"), std::make_pair(200, std::string()));
  EXPECT_EQ(Get(pub, "POST", "/readyz").first, 405);
  // Debug endpoints only on the admin listener.
  EXPECT_EQ(Get(pub, "GET", "/debug/config_dump").first, 404);
  EXPECT_EQ(Get(dbg, "GET", "/debug/config_dump"), std::make_pair(200, std::string("{\n  \"snapshot\": null\n}\n")));
  EXPECT_EQ(Get(dbg, "GET", "/debug/certs").first, 200);
  EXPECT_EQ(Get(dbg, "GET", "/metrics").first, 200);
  EXPECT_EQ(Get(dbg, "GET", "/debug/nope").first, 404);
  server.Stop();
  EXPECT_EQ(Get(pub, "GET", "/healthz").first, 0);
}

// The kubelet's probes have their own listener: scrapes that stall every metrics thread leave them answering.
TEST(AdminServer, StalledMetricsScrapesDoNotStarveTheProbes) {
  AdminSources src;
  src.metrics = [] { return std::string("zeromesh_agent_ready 1\n"); };
  src.readiness = [] {
    Readiness r;
    r.uplink_attached = r.config_applied = r.links_synced = r.listeners_in_sockmap = true;
    return r;
  };
  AdminServer server({"127.0.0.1:0", "", "127.0.0.1:0"}, src);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  ASSERT_NE(server.health_port(), 0);
  // More half-sent requests than the metrics server has threads: each holds one until its request timeout.
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server.metrics_port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_GT(write(fd, "GET /metrics HTTP/1.1\r\n", 23), 0);
    stalled.push_back(fd);
  }
  EXPECT_EQ(Get(server.health_port(), "GET", "/readyz"), std::make_pair(200, std::string("ready\n")));
  EXPECT_EQ(Get(server.health_port(), "GET", "/healthz").first, 200);
  EXPECT_EQ(Get(server.health_port(), "GET", "/metrics").first, 404);  // probes only
  for (int fd : stalled) close(fd);
}

TEST(AdminServer, ABusyPortIsAnErrorNotACrash) {
  AdminServer first({"127.0.0.1:0", "", ""}, {});
  std::string error;
  ASSERT_TRUE(first.Start(&error)) << error;
  AdminServer second({"127.0.0.1:" + std::to_string(first.metrics_port()), "", ""}, {});
  EXPECT_FALSE(second.Start(&error));
  EXPECT_NE(error.find("metrics"), std::string::npos) << error;
  EXPECT_EQ(second.metrics_port(), 0);
}

TEST(AdminServer, ListenAddressesAreIpv4AndPort) {
  std::string error;
  EXPECT_TRUE(ValidListenAddr("0.0.0.0:15020", &error));
  EXPECT_TRUE(ValidListenAddr("127.0.0.1:0", &error));
  for (const char* bad : {"15020", ":15020", "localhost:15000", "127.0.0.1:", "127.0.0.1:65536", "1.2.3.4:x1",
                          "127.0.0.1:15000,0.0.0.0:1"}) {
    EXPECT_FALSE(ValidListenAddr(bad, &error)) << bad;
  }
}

TEST(CertInfo, LocalIdentitiesWithSerialAndExpiry) {
  auto ca = testing::MakeCa("root");
  tls::SpiffeId a{"cluster.local", "default", "a"};
  tls::SpiffeId b{"cluster.local", "default", "b"};
  agent::InMemoryCertStore certs;
  std::string error;
  std::vector<agent::IdentityMaterial> ids;
  ids.push_back({a, testing::MakeLeaf(ca, {a.ToString()})});
  ASSERT_TRUE(certs.Replace("cluster.local", testing::Roots(ca), std::move(ids), &error)) << error;
  auto ip = [](const char* s) { return std::vector<net::IpAddr>{*net::IpAddr::Parse(s)}; };
  agent::MeshSnapshot snap("cluster.local", "node1", agent::MeshMode::kStrict,
                           {{"pa", "default", "a", "node1", ip("10.244.1.11"), true, agent::MeshMode::kStrict},
                            {"pa2", "default", "a", "node1", ip("10.244.1.12"), true, agent::MeshMode::kStrict},
                            {"pb", "default", "b", "node1", ip("10.244.1.13"), true, agent::MeshMode::kStrict},
                            {"plain", "default", "c", "node1", ip("10.244.1.14"), false, agent::MeshMode::kStrict},
                            {"remote", "default", "d", "node2", ip("10.244.2.11"), true, agent::MeshMode::kStrict},
                            {"dual",
                             "other",
                             "e",
                             "node2",
                             {*net::IpAddr::Parse("10.244.2.12"), *net::IpAddr::Parse("fd00::2:c")},
                             true,
                             agent::MeshMode::kStrict}});
  int64_t now = time(nullptr);
  auto list = LocalCerts(&snap, certs, now);
  ASSERT_EQ(list.size(), 2u);  // a and b; not the unenrolled or remote pods
  EXPECT_EQ(list[0].identity, a.ToString());
  EXPECT_EQ(list[0].workloads, (std::vector<std::string>{"default/pa", "default/pa2"}));
  EXPECT_TRUE(list[0].present);
  EXPECT_FALSE(list[0].serial.empty());
  EXPECT_GT(list[0].not_after, list[0].not_before);
  EXPECT_EQ(list[0].seconds_left, list[0].not_after - now);
  EXPECT_GT(list[0].seconds_left, 0);
  EXPECT_EQ(list[1].identity, b.ToString());
  EXPECT_FALSE(list[1].present);  // no certificate loaded for b
  EXPECT_EQ(SoonestExpirySeconds(list), static_cast<double>(list[0].seconds_left));
  auto j = CertsJson(list);
  EXPECT_EQ(j["certificates"][0]["serial"], list[0].serial);
  EXPECT_FALSE(j["certificates"][1].contains("not_after"));

  ConfigDumpInput in;
  in.snapshot = &snap;
  in.identities = list;
  in.attachments = {{"eth0", 2, agent::bpf::IfaceRole::kUplink, 7, 9, false, 1, 1700000000, "ingress detached"}};
  auto dump = ConfigDump(in);
  EXPECT_EQ(dump["snapshot"]["workloads"].size(), 6u);
  EXPECT_EQ(dump["snapshot"]["workloads"][0]["name"], "pa");
  EXPECT_EQ(dump["snapshot"]["workloads"][0]["ip"], "10.244.1.11");
  EXPECT_EQ(dump["snapshot"]["workloads"][5]["name"], "dual");  // by namespace/name
  EXPECT_EQ(dump["snapshot"]["workloads"][5]["ip"], "10.244.2.12");
  EXPECT_EQ(dump["snapshot"]["workloads"][5]["ips"], (nlohmann::json{"10.244.2.12", "fd00::2:c"}));
  EXPECT_EQ(dump["bpf"]["attachments"][0]["role"], "uplink");
  EXPECT_EQ(dump["bpf"]["attachments"][0]["last_repair"], "ingress detached");
  EXPECT_EQ(dump["local_identities"][1]["certificate_loaded"], false);
}

}  // namespace
}  // namespace zm::admin
