// agent/state: config file parsing and validation, reload keeping the last good config, cert store rotation.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "agent/state/local_config.h"
#include "tests/unit/proxy/test_certs.h"

namespace zm::agent {
namespace {

constexpr char kA[] = "spiffe://cluster.local/ns/default/sa/sa-a";

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-state-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ca_ = testing::MakeCa("root");
    auto a = testing::MakeLeaf(ca_, {kA});
    testing::WritePem(dir_, "root.pem", tls::CertToPem(ca_.cert.get()));
    testing::WritePem(dir_, "a.crt", testing::ChainPem(a));
    testing::WritePem(dir_, "a.key", testing::KeyPem(a));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Good() const {
    return R"({"node":"node1","trustDomain":"cluster.local","mode":"STRICT","rootCert":"root.pem",
      "workloads":[{"name":"podA","namespace":"default","serviceAccount":"sa-a","ip":"10.244.1.11","node":"node1",
                    "enrolled":true},
                   {"name":"podB","namespace":"default","serviceAccount":"sa-b","ip":"10.244.2.11","node":"node2",
                    "enrolled":false,"mode":"PERMISSIVE"}],
      "identities":[{"spiffeId":")" +
           std::string(kA) + R"(","certChain":"a.crt","key":"a.key"}]})";
  }
  std::string Write(const std::string& text) const { return testing::WritePem(dir_, "config.json", text); }
  std::string ErrorFor(const std::string& text) const {
    LocalConfig cfg;
    std::string err;
    EXPECT_FALSE(ParseLocalConfig(text, dir_ + "/config.json", &cfg, &err)) << text;
    return err;
  }
  std::string Replace(std::string s, const std::string& from, const std::string& to) const {
    size_t p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    return s.replace(p, from.size(), to);
  }

  std::string dir_;
  testing::TestCa ca_;
};

TEST_F(StateTest, LoadsGoodConfig) {
  LocalConfig cfg;
  std::string err;
  ASSERT_TRUE(LoadLocalConfig(Write(Good()), &cfg, &err)) << err;
  const MeshSnapshot& s = *cfg.snapshot;
  EXPECT_EQ(s.node(), "node1");
  EXPECT_EQ(s.trust_domain(), "cluster.local");
  EXPECT_EQ(s.default_mode(), MeshMode::kStrict);
  const Workload* a = s.Find(Ip("10.244.1.11"));
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->enrolled);
  EXPECT_TRUE(s.IsLocal(*a));
  EXPECT_EQ(a->mode, MeshMode::kStrict);
  EXPECT_EQ(s.IdentityOf(*a).ToString(), kA);
  const Workload* b = s.Find(Ip("10.244.2.11"));
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(s.IsLocal(*b));
  EXPECT_EQ(b->mode, MeshMode::kPermissive);
  EXPECT_EQ(s.Find(Ip("10.244.9.9")), nullptr);
  EXPECT_EQ(cfg.identities.size(), 1u);
  EXPECT_TRUE(s.exclude_cidrs().empty());
  EXPECT_FALSE(s.strict_udp_allowed());
  EXPECT_EQ(s.tracing_sampling_ppm(), 10000u);  // MeshConfig's default: 1 %

  ASSERT_TRUE(LoadLocalConfig(
      Write(Replace(Good(), R"("mode":"STRICT",)",
                    R"("mode":"STRICT","excludeCidrs":["10.0.0.0/8","192.168.1.1"],"strictUdp":"Allow",)")),
      &cfg, &err))
      << err;
  EXPECT_EQ(cfg.snapshot->exclude_cidrs(), (std::vector<std::string>{"10.0.0.0/8", "192.168.1.1"}));
  EXPECT_TRUE(cfg.snapshot->strict_udp_allowed());
  ASSERT_TRUE(LoadLocalConfig(
      Write(Replace(Good(), R"("mode":"STRICT",)", R"("mode":"STRICT","excludeCidrs":["10.0.0.0/8","fd00:ff::/64"],)")),
      &cfg, &err))
      << err;
  EXPECT_EQ(cfg.snapshot->exclude_cidrs(), (std::vector<std::string>{"10.0.0.0/8", "fd00:ff::/64"}));

  for (auto [pct, ppm] : {std::pair{"0", 0u}, std::pair{"12.5", 125000u}, std::pair{"100", 1000000u}}) {
    std::string text = Replace(Good(), R"("mode":"STRICT",)",
                               std::string(R"("mode":"STRICT","tracing":{"samplingPercentage":)") + pct + "},");
    ASSERT_TRUE(LoadLocalConfig(Write(text), &cfg, &err)) << err;
    EXPECT_EQ(cfg.snapshot->tracing_sampling_ppm(), ppm) << pct;
  }
}

TEST_F(StateTest, SpecificErrors) {
  const std::string g = Good();
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {"{", "(document): invalid JSON"},
      {"[]", "(document): must be a JSON object"},
      {Replace(g, R"("node":"node1",)", ""), ": node: missing"},
      {Replace(g, R"("trustDomain":"cluster.local")", R"("trustDomain":"Cluster")"),
       "trustDomain: invalid trust domain 'Cluster'"},
      {Replace(g, R"("mode":"STRICT")", R"("mode":"strict")"), "mode: must be \"STRICT\" or \"PERMISSIVE\""},
      {Replace(g, "root.pem", "missing.pem"), "rootCert: " + dir_ + "/missing.pem: No such file"},
      {Replace(g, "10.244.1.11", "10.244.1"), "workloads[0].ip: not an IPv4 or IPv6 address: \"10.244.1\""},
      {Replace(g, "10.244.1.11", "fd00::1::2"), "workloads[0].ip: not an IPv4 or IPv6 address"},
      {Replace(g, "10.244.2.11", "10.244.1.11"), "workloads[1].ip: duplicate workload IP 10.244.1.11"},
      {Replace(g, R"("ip":"10.244.2.11",)", R"("ip":"10.244.2.11","ips":["fd00::2:b","10.244.1.11"],)"),
       "workloads[1].ips: duplicate workload IP 10.244.1.11"},
      {Replace(g, R"("ip":"10.244.2.11",)", R"("ip":"10.244.2.11","ips":"fd00::2:b",)"),
       "workloads[1].ips: must be an array of IP addresses"},
      {Replace(g, R"("ip":"10.244.2.11",)", R"("ip":"10.244.2.11","ips":["fd00::2:b",7],)"),
       "workloads[1].ips[1]: not an IPv4 or IPv6 address: 7"},
      {Replace(g, R"("enrolled":true)", R"("enrolled":"yes")"), "workloads[0].enrolled: must be true or false"},
      {Replace(g, R"("namespace":"default","serviceAccount":"sa-a")", R"("namespace":"Def","serviceAccount":"sa-a")"),
       "workloads[0].namespace: invalid namespace 'Def': uppercase"},
      {Replace(g, R"("mode":"PERMISSIVE")", R"("mode":"OPEN")"), "workloads[1].mode: must be"},
      {Replace(g, R"("node":"node2",)", R"("node":"node2","colour":1,)"), "workloads[1].colour: unknown field"},
      {Replace(g, kA, "spiffe://other.local/ns/default/sa/sa-a"), "identities[0].spiffeId: not in trust domain"},
      {Replace(g, kA, "spiffe://cluster.local/ns/default"), "identities[0].spiffeId: SPIFFE ID path must be"},
      {Replace(g, "a.key", "a.crt"), "identities[0].key: " + dir_ + "/a.crt: invalid PEM private key"},
      {Replace(g, R"("certChain":"a.crt",)", ""), "identities[0].certChain: missing"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","excludeCidrs":["10.0.0.0/8","10.1.0.0/33"],)"),
       "excludeCidrs[1]: not a CIDR"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","excludeCidrs":["fd00::/129"],)"),
       "excludeCidrs[0]: not a CIDR"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","excludeCidrs":"10.0.0.0/8",)"),
       "excludeCidrs: must be an array"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","strictUdp":"Some",)"),
       "strictUdp: must be \"DNSOnly\" or \"Allow\""},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","tracing":{"samplingPercentage":101},)"),
       "tracing.samplingPercentage: must be a number from 0 to 100, got 101"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","tracing":{"samplingPercentage":-0.5},)"),
       "tracing.samplingPercentage: must be a number from 0 to 100, got -0.5"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","tracing":{"samplingPercentage":"5"},)"),
       "tracing.samplingPercentage: must be a number from 0 to 100, got \"5\""},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","tracing":{},)"), "tracing.samplingPercentage: missing"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","tracing":{"samplingRatio":0.5},)"),
       "tracing.samplingRatio: unknown field"},
      {Replace(g, R"("mode":"STRICT",)", R"("mode":"STRICT","tracing":10,)"), "tracing: must be an object"},
  };
  for (const auto& c : cases) {
    std::string err = ErrorFor(c.text);
    EXPECT_NE(err.find(c.expect), std::string::npos) << "got: " << err << "\nwant: " << c.expect;
    EXPECT_EQ(err.rfind(dir_ + "/config.json: ", 0), 0u) << err;
  }
}

TEST_F(StateTest, ReloadKeepsLastGoodConfig) {
  SnapshotHolder holder;
  InMemoryCertStore certs;
  int notified = 0;
  holder.Subscribe([&] { ++notified; });
  LocalConfigSource src(Write(Good()), &holder, &certs);
  std::string err;
  ASSERT_TRUE(src.Reload(&err)) << err;
  EXPECT_EQ(notified, 1);
  auto first = holder.Get();
  ASSERT_TRUE(first);
  tls::SpiffeId a;
  ASSERT_TRUE(tls::ParseSpiffeId(kA, &a, &err));
  auto a_tls = certs.Get(a);
  ASSERT_TRUE(a_tls);

  Write("{ broken");
  EXPECT_FALSE(src.Reload(&err));
  EXPECT_EQ(holder.Get(), first);
  EXPECT_EQ(certs.Get(a), a_tls);
  EXPECT_EQ(notified, 1);

  // A certificate that does not chain to the root is refused as a whole.
  auto other = testing::MakeCa("other");
  auto foreign = testing::MakeLeaf(other, {kA});
  testing::WritePem(dir_, "a.crt", testing::ChainPem(foreign));
  testing::WritePem(dir_, "a.key", testing::KeyPem(foreign));
  Write(Good());
  EXPECT_FALSE(src.Reload(&err));
  EXPECT_NE(err.find("does not chain to the trust bundle"), std::string::npos) << err;
  EXPECT_EQ(holder.Get(), first);
  EXPECT_EQ(certs.Get(a), a_tls);
}

TEST_F(StateTest, CertStoreRotationSwapsContexts) {
  InMemoryCertStore certs;
  tls::SpiffeId a;
  std::string err;
  ASSERT_TRUE(tls::ParseSpiffeId(kA, &a, &err));
  std::vector<IdentityMaterial> ids;
  ids.push_back({a, testing::MakeLeaf(ca_, {kA})});
  ASSERT_TRUE(certs.Replace("cluster.local", testing::Roots(ca_), std::move(ids), &err)) << err;
  auto before = certs.Get(a);
  ASSERT_TRUE(before);
  ASSERT_TRUE(certs.Update({a, testing::MakeLeaf(ca_, {kA})}, &err)) << err;
  auto after = certs.Get(a);
  ASSERT_TRUE(after);
  EXPECT_NE(before->server_ctx.get(), after->server_ctx.get());
  // The old context stays valid for whoever still holds it.
  bssl::UniquePtr<SSL> ssl(SSL_new(before->server_ctx.get()));
  EXPECT_TRUE(ssl);
  // Wrong identity in the certificate is refused.
  EXPECT_FALSE(certs.Update({a, testing::MakeLeaf(ca_, {"spiffe://cluster.local/ns/default/sa/other"})}, &err));
  EXPECT_NE(err.find("certificate is for"), std::string::npos) << err;
  certs.Remove(a);
  EXPECT_FALSE(certs.Get(a));
}

// The destination proxy's per-connection question "is this pod port an HTTP Service port, and which?" is an index
// lookup.
TEST(MeshSnapshotIndex, FindsTheHttpServiceOfAnEndpointPort) {
  Service tcp;
  tcp.name = "db";
  tcp.ns = "shop";
  tcp.ports = {{5432, 5432, PortProtocol::kTcp}};
  tcp.endpoints.push_back({Ip("10.244.1.11"), "", ""});
  Service web;
  web.name = "web";
  web.ns = "shop";
  web.ports = {{80, 8080, PortProtocol::kHttp}, {9090, 9090, PortProtocol::kGrpc}, {81, 8081, PortProtocol::kHttp2}};
  web.endpoints.push_back({Ip("10.244.1.11"), "", ""});
  web.endpoints.push_back({Ip("10.244.2.11"), "", ""});
  MeshSnapshot s("cluster.local", "node1", MeshMode::kStrict, {}, {tcp, web});
  PortProtocol p = PortProtocol::kTcp;
  ASSERT_NE(s.FindServiceOfEndpoint(Ip("10.244.2.11"), 8080, &p), nullptr);
  EXPECT_EQ(p, PortProtocol::kHttp);
  EXPECT_EQ(s.FindServiceOfEndpoint(Ip("10.244.1.11"), 8080, &p)->Key(), "shop/web");
  ASSERT_NE(s.FindServiceOfEndpoint(Ip("10.244.1.11"), 9090, &p), nullptr);
  EXPECT_EQ(p, PortProtocol::kGrpc);
  ASSERT_NE(s.FindServiceOfEndpoint(Ip("10.244.2.11"), 8081, &p), nullptr);
  EXPECT_EQ(p, PortProtocol::kHttp2);
  p = PortProtocol::kTcp;
  EXPECT_EQ(s.FindServiceOfEndpoint(Ip("10.244.1.11"), 5432, &p), nullptr);  // TCP
  EXPECT_EQ(s.FindServiceOfEndpoint(Ip("10.244.1.11"), 80, &p), nullptr);    // the Service port, not the pod's
  EXPECT_EQ(s.FindServiceOfEndpoint(Ip("10.244.9.9"), 8080, &p), nullptr);
  EXPECT_EQ(p, PortProtocol::kTcp);  // untouched when none
}

// Services that disagree on a pod port: the index keeps every protocol declared there, and the HTTP Service that
// names its requests is the first by namespace/name whatever order the snapshot lists them in.
TEST(MeshSnapshotIndex, KeepsEveryProtocolServicesDeclareForAPodPort) {
  auto service = [](const char* ns, const char* name, uint16_t port, PortProtocol protocol) {
    Service s;
    s.ns = ns;
    s.name = name;
    s.ports = {{port, 8080, protocol}};
    s.endpoints.push_back({Ip("10.244.1.11"), "", ""});
    return s;
  };
  const Service grpc = service("shop", "web-rpc", 90, PortProtocol::kGrpc);
  const Service http = service("shop", "web", 80, PortProtocol::kHttp);
  const Service tcp = service("aaa", "raw", 81, PortProtocol::kTcp);  // first by namespace, but not HTTP
  const Service http_other_ns = service("zzz", "site", 82, PortProtocol::kHttp);
  for (bool reversed : {false, true}) {
    SCOPED_TRACE(reversed ? "reversed" : "in order");
    std::vector<Service> all = {grpc, http_other_ns, tcp, http};
    if (reversed) std::reverse(all.begin(), all.end());
    MeshSnapshot s("cluster.local", "node1", MeshMode::kStrict, {}, all);
    EndpointPort port = s.FindEndpointPort(Ip("10.244.1.11"), 8080);
    EXPECT_TRUE(port.Declares(PortProtocol::kHttp));
    EXPECT_TRUE(port.Declares(PortProtocol::kGrpc));
    EXPECT_TRUE(port.Declares(PortProtocol::kTcp));
    EXPECT_FALSE(port.Declares(PortProtocol::kHttp2));
    ASSERT_NE(port.http_service, nullptr);
    EXPECT_EQ(port.http_service->Key(), "shop/web");  // "shop/web" < "shop/web-rpc" < "zzz/site"; aaa/raw is TCP
    EXPECT_EQ(port.http_protocol, PortProtocol::kHttp);
    PortProtocol p = PortProtocol::kTcp;
    ASSERT_NE(s.FindServiceOfEndpoint(Ip("10.244.1.11"), 8080, &p), nullptr);
    EXPECT_EQ(s.FindServiceOfEndpoint(Ip("10.244.1.11"), 8080, &p)->Key(), "shop/web");
    EXPECT_EQ(p, PortProtocol::kHttp);
  }
  // Only TCP declared: indexed, but no HTTP Service; a port no Service selects declares nothing.
  MeshSnapshot only_tcp("cluster.local", "node1", MeshMode::kStrict, {}, {tcp});
  EndpointPort port = only_tcp.FindEndpointPort(Ip("10.244.1.11"), 8080);
  EXPECT_EQ(port.declared, 1u << static_cast<unsigned>(PortProtocol::kTcp));
  EXPECT_EQ(port.http_service, nullptr);
  PortProtocol p = PortProtocol::kGrpc;
  EXPECT_EQ(only_tcp.FindServiceOfEndpoint(Ip("10.244.1.11"), 8080, &p), nullptr);
  EXPECT_EQ(p, PortProtocol::kGrpc);
  EXPECT_EQ(only_tcp.FindEndpointPort(Ip("10.244.1.11"), 8081).declared, 0u);
}

// A dual-stack pod: "ips" lists every address ("ip" first, repeated or not); each finds the same workload, and the
// snapshot still counts one workload.
TEST_F(StateTest, DualStackWorkloadIsFoundByEveryAddress) {
  LocalConfig cfg;
  std::string err;
  ASSERT_TRUE(LoadLocalConfig(Write(Replace(Good(), R"("ip":"10.244.1.11",)",
                                            R"("ip":"10.244.1.11","ips":["fd00:10:244:1::b","10.244.1.11"],)")),
                              &cfg, &err))
      << err;
  const MeshSnapshot& s = *cfg.snapshot;
  EXPECT_EQ(s.size(), 2u);
  const Workload* a = s.Find(Ip("10.244.1.11"));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->ips, (std::vector<net::IpAddr>{Ip("10.244.1.11"), Ip("fd00:10:244:1::b")}));
  EXPECT_EQ(s.Find(Ip("fd00:10:244:1:0:0:0:b")), a);  // any spelling of the address
  EXPECT_EQ(s.Find(Ip("fd00:10:244:1::c")), nullptr);
  EXPECT_EQ(s.Find(Ip("::ffff:10.244.1.11")), a);  // an IPv4-mapped peer is the IPv4 pod

  // An IPv6-only pod.
  ASSERT_TRUE(LoadLocalConfig(Write(Replace(Good(), "10.244.2.11", "fd00:10:244:2::b")), &cfg, &err)) << err;
  const Workload* b = cfg.snapshot->Find(Ip("fd00:10:244:2::b"));
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->name, "podB");
  EXPECT_EQ(cfg.snapshot->Find(Ip("10.244.2.11")), nullptr);
}

// The endpoint-port index answers for either family of a dual-stack endpoint, and a later workload that claims an
// address takes it over (a workload left with none is dropped, as before).
TEST(MeshSnapshotTest, IndexesEveryAddress) {
  Workload a;
  a.name = "a";
  a.ips = {Ip("10.244.1.11"), Ip("fd00::1:b")};
  Workload b;
  b.name = "b";
  b.ips = {Ip("fd00::1:b")};
  Workload c;
  c.name = "c";
  c.ips = {Ip("10.244.1.12")};
  Workload d;
  d.name = "d";
  d.ips = {Ip("10.244.1.12")};
  Service web;
  web.name = "web";
  web.ns = "shop";
  web.vips = {Ip("10.96.0.10"), Ip("fd00:96::a")};
  web.ports = {{80, 8080, PortProtocol::kHttp}};
  web.endpoints = {{Ip("10.244.1.11"), "", ""}, {Ip("fd00::1:b"), "", ""}};
  MeshSnapshot s("cluster.local", "node1", MeshMode::kStrict, {a, b, c, d}, {web});
  EXPECT_EQ(s.Find(Ip("10.244.1.11"))->name, "a");
  EXPECT_EQ(s.Find(Ip("fd00::1:b"))->name, "b");
  EXPECT_EQ(s.Find(Ip("10.244.1.12"))->name, "d");
  EXPECT_EQ(s.size(), 3u);  // c lost its only address to d
  EXPECT_EQ(s.FindService(Ip("10.96.0.10")), s.FindService(Ip("fd00:96::a")));
  ASSERT_NE(s.FindService(Ip("fd00:96::a")), nullptr);
  EXPECT_EQ(s.FindService(Ip("fd00:96::b")), nullptr);
  PortProtocol p = PortProtocol::kTcp;
  ASSERT_NE(s.FindServiceOfEndpoint(Ip("fd00::1:b"), 8080, &p), nullptr);
  EXPECT_EQ(p, PortProtocol::kHttp);
  EXPECT_EQ(s.FindEndpointPort(Ip("10.244.1.11"), 8080).http_service,
            s.FindEndpointPort(Ip("fd00::1:b"), 8080).http_service);
  EXPECT_EQ(s.FindServiceOfEndpoint(Ip("fd00::1:c"), 8080, &p), nullptr);
}
}  // namespace
}  // namespace zm::agent
