// The local JSON config's "services" list: same shape as the controller's Service, with specific errors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "agent/state/local_config.h"
#include "tests/unit/proxy/test_certs.h"

namespace zm::agent {
namespace {

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

class LocalServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-services-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ca_ = testing::MakeCa("root");
    testing::WritePem(dir_, "root.pem", tls::CertToPem(ca_.cert.get()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string Config(const std::string& services) {
    return R"({"node":"node1","trustDomain":"cluster.local","mode":"STRICT","rootCert":"root.pem",
      "workloads":[{"name":"web-1","namespace":"shop","serviceAccount":"web","ip":"10.244.2.11","node":"node2",
                    "ips":["10.244.2.11","fd00:10:244:2::b"],"enrolled":true}],
      "services":)" +
           services + "}";
  }
  bool Parse(const std::string& text, LocalConfig* cfg, std::string* err) const {
    return ParseLocalConfig(text, dir_ + "/config.json", cfg, err);
  }

  std::string dir_;
  testing::TestCa ca_;
};

TEST_F(LocalServicesTest, ParsesServicesAndFillsWorkloadEndpoints) {
  LocalConfig cfg;
  std::string err;
  ASSERT_TRUE(Parse(Config(R"([{"name":"web","namespace":"shop","vip":"10.96.0.10",
      "ports":[{"port":80,"targetPort":8080},{"port":81}],
      "endpoints":[{"ip":"10.244.2.11"},{"ip":"192.168.1.5","node":"edge"}],
      "loadBalancer":{"algorithm":"PowerOfTwoChoices","localityPreference":true}}])"),
                    &cfg, &err))
      << err;
  const Service* s = cfg.snapshot->FindService(Ip("10.96.0.10"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s, cfg.snapshot->FindService("shop", "web"));
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(s->FindPort(80)->target_port, 8080);
  EXPECT_EQ(s->FindPort(81)->target_port, 81);
  ASSERT_EQ(s->endpoints.size(), 2u);
  EXPECT_EQ(s->endpoints[0].node, "node2");  // from the workload with that IP
  EXPECT_EQ(s->endpoints[0].workload, "shop/web-1");
  EXPECT_EQ(s->endpoints[1].node, "edge");
  EXPECT_EQ(s->policy.algorithm, LbAlgorithm::kPowerOfTwoChoices);
  EXPECT_TRUE(s->policy.locality_preference);
}

TEST_F(LocalServicesTest, SpecificErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0","ports":[{"port":80}]}])",
       "services[0].vip: not an IPv4 or IPv6 address"},
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","vips":["fd00:96::g"],"ports":[{"port":80}]}])",
       "services[0].vips[0]: not an IPv4 or IPv6 address"},
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","vips":["fd00:10:244:2::b"],"ports":[{"port":80}]}])",
       "services[0].vips: is a workload IP"},
      {R"([{"name":"a","namespace":"shop","vip":"10.96.0.1","vips":["fd00:96::1"],"ports":[{"port":80}]},
           {"name":"b","namespace":"shop","vip":"fd00:96::1","ports":[{"port":80}]}])",
       "services[1].vip: duplicate service VIP fd00:96::1"},
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","ports":[]}])",
       "services[0].ports: must be a non-empty"},
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","ports":[{"port":70000}]}])",
       "services[0].ports[0].port: must be a port number"},
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","ports":[{"port":80}],"loadBalancer":{"algorithm":"x"}}])",
       "services[0].loadBalancer.algorithm: must be RoundRobin"},
      {R"([{"name":"web","namespace":"shop","vip":"10.244.2.11","ports":[{"port":80}]}])",
       "services[0].vip: is a workload IP"},
      {R"([{"name":"a","namespace":"shop","vip":"10.96.0.1","ports":[{"port":80}]},
           {"name":"b","namespace":"shop","vip":"10.96.0.1","ports":[{"port":80}]}])",
       "services[1].vip: duplicate service VIP"},
      {R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","ports":[{"port":80}],"color":"red"}])",
       "services[0].color: unknown field"},
  };
  for (const auto& [services, want] : cases) {
    LocalConfig cfg;
    std::string err;
    EXPECT_FALSE(Parse(Config(services), &cfg, &err)) << services;
    EXPECT_NE(err.find(want), std::string::npos) << err;
  }
}

// A dual-stack Service: "vips" holds every cluster IP, each finds the Service; an IPv6 endpoint of a dual-stack
// workload takes its node and name like an IPv4 one.
TEST_F(LocalServicesTest, DualStackServices) {
  LocalConfig cfg;
  std::string err;
  ASSERT_TRUE(Parse(Config(R"([{"name":"web","namespace":"shop","vip":"10.96.0.10","vips":["fd00:96::a"],
      "ports":[{"port":80,"targetPort":8080}],
      "endpoints":[{"ip":"10.244.2.11"},{"ip":"fd00:10:244:2::b"},{"ip":"fd00:ff::5","node":"edge"}]}])"),
                    &cfg, &err))
      << err;
  const Service* s = cfg.snapshot->FindService(Ip("fd00:96::a"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s, cfg.snapshot->FindService(Ip("10.96.0.10")));
  EXPECT_EQ(s->vips, (std::vector<net::IpAddr>{Ip("10.96.0.10"), Ip("fd00:96::a")}));
  ASSERT_EQ(s->endpoints.size(), 3u);
  EXPECT_EQ(s->endpoints[1].ip, Ip("fd00:10:244:2::b"));
  EXPECT_EQ(s->endpoints[1].node, "node2");
  EXPECT_EQ(s->endpoints[1].workload, "shop/web-1");
  EXPECT_EQ(s->endpoints[2].node, "edge");
  EXPECT_EQ(s->endpoints[2].workload, "");

  // An IPv6-only Service.
  ASSERT_TRUE(
      Parse(Config(R"([{"name":"v6","namespace":"shop","vip":"fd00:96::b","ports":[{"port":80}]}])"), &cfg, &err))
      << err;
  EXPECT_NE(cfg.snapshot->FindService(Ip("fd00:96::b")), nullptr);
}
}  // namespace
}  // namespace zm::agent
