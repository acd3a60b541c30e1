// What the HBONE TLS layer refuses, end to end against the real NodeProxy on loopback (issue 15):
//  - the HBONE listener (product listener, worker and TLS contexts from the cert store) refuses a client without a
//    certificate, one offering TLS 1.2 at most, one with an expired certificate, and ones from another CA or trust
//    domain; none of their CONNECTs reaches the pod. Every refusal test then has a valid client served by the same
//    server, so a refusal cannot come from a harness that never works.
//  - the HBONE client refuses a server presenting an expired certificate or another identity than the destination's,
//    and the rogue server proves it was dialled (TCP connection, ClientHello, the client's alert) and got no byte.
//  - certificate rotation changes the certificate the listener actually presents in the handshake (serial, validity,
//    public key), while a connection opened before it and new ones keep working.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "agent/proxy/node_proxy.h"
#include "agent/state/cert_store.h"
#include "common/tls/chain.h"
#include "tests/unit/proxy/loopback.h"
#include "tests/unit/proxy/test_certs.h"
#include "tests/unit/proxy/tls_probe.h"

namespace zm::proxy {
namespace {

using agent::MeshMode;
using agent::Workload;
using testing::Ip;

constexpr char kTd[] = "cluster.local";
constexpr char kPodA[] = "127.0.0.11";   // node1, sa-a: the client side
constexpr char kPodB[] = "127.0.0.22";   // node2, sa-b: the server side
constexpr char kPodA2[] = "127.0.0.13";  // node1, sa-a too: its own pool key, so its own HBONE connection

std::string Id(const std::string& sa, const std::string& td = kTd) {
  return "spiffe://" + td + "/ns/default/sa/" + sa;
}

tls::SpiffeId ParseId(const std::string& s) {
  tls::SpiffeId id;
  std::string err;
  EXPECT_TRUE(tls::ParseSpiffeId(s, &id, &err)) << err;
  return id;
}

Workload W(const char* name, const char* sa, const char* ip, const char* node) {
  Workload w;
  w.name = name;
  w.ns = "default";
  w.service_account = sa;
  w.ips = {Ip(ip)};
  w.node = node;
  w.enrolled = true;
  w.mode = MeshMode::kStrict;
  return w;
}

std::vector<Workload> Pods() {
  return {W("podA", "sa-a", kPodA, "node1"), W("podA2", "sa-a", kPodA2, "node1"), W("podB", "sa-b", kPodB, "node2")};
}

// A valid leaf made exactly like the expired one below (re-signed with a chosen validity), so that the control case
// and the expired case differ in nothing but the dates.
tls::Credentials Leaf(const testing::TestCa& ca, const std::string& uri, long not_before, long not_after) {
  tls::Credentials c = testing::MakeLeaf(ca, {uri});
  testing::SetLeafValidity(c, ca, not_before, not_after);
  return c;
}

// |error| (a TLS peer's failure) is |alert|, or the connection was torn down before the alert could be read.
bool AlertOrReset(const std::string& error, const std::string& alert) {
  return error.find(alert) != std::string::npos || error.find("closed (EOF)") != std::string::npos ||
         error.find("Connection reset") != std::string::npos;
}

struct Node {
  agent::SnapshotHolder snaps;
  agent::InMemoryCertStore certs;
  std::shared_ptr<testing::RecordingObserver> observer = std::make_shared<testing::RecordingObserver>();
  std::unique_ptr<NodeProxy> proxy;
  std::mutex mu;
  std::map<net::IpAddr, uint16_t> redirect;  // pod ip -> real port, for connections captured by the outbound listener
  uint16_t outbound_port = 0;
};

// Sends |msg| and reads exactly as many bytes back (the echo), without closing: the connection stays usable.
std::string Roundtrip(int fd, const std::string& msg) {
  if (send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) return "<send failed>";
  std::string got;
  char buf[256];
  while (got.size() < msg.size()) {
    ssize_t n = read(fd, buf, std::min(sizeof(buf), msg.size() - got.size()));
    if (n <= 0) return got + "<closed>";
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class HboneTlsTest : public ::testing::Test {
 protected:
  ProxyOptions Options(Node& n) {
    ProxyOptions o;
    o.workers = 2;
    o.outbound_port = o.hbone_port = o.plaintext_port = 0;
    o.transparent_listeners = false;
    o.source_bind = SourceBind::kPlain;
    o.connect_timeout = std::chrono::milliseconds(2000);
    o.unknown_source_hold = std::chrono::milliseconds(300);
    o.observer = n.observer;
    o.original_dst = [&n](int fd, net::SockAddr* dst) {
      if (!LocalAddr(fd, dst)) return false;
      std::lock_guard<std::mutex> l(n.mu);
      if (dst->port == n.outbound_port) {
        auto it = n.redirect.find(dst->ip);
        if (it != n.redirect.end()) dst->port = it->second;
      }
      return true;
    };
    return o;
  }

  void Start(Node& n, const char* node_name, const std::string& sa, tls::Credentials creds, uint16_t dial_port = 0) {
    n.snaps.Set(std::make_shared<agent::MeshSnapshot>(kTd, node_name, MeshMode::kStrict, Pods()));
    std::vector<agent::IdentityMaterial> ids(1);
    ids[0].id = ParseId(Id(sa));
    ids[0].creds = std::move(creds);
    std::string err;
    ASSERT_TRUE(n.certs.Replace(kTd, testing::Roots(ca_), std::move(ids), &err)) << err;
    ProxyOptions o = Options(n);
    if (dial_port != 0) o.hbone_dial_port = dial_port;
    n.proxy = std::make_unique<NodeProxy>(std::move(o), n.snaps, n.certs);
    ASSERT_TRUE(n.proxy->Start(&err)) << err;
    std::lock_guard<std::mutex> l(n.mu);
    n.outbound_port = n.proxy->outbound_port();
  }

  // node2: the real HBONE server for podB (sa-b).
  void StartServer() { Start(node2_, "node2", "sa-b", Leaf(ca_, Id("sa-b"), -3600, 86400)); }
  // node1: the real HBONE client for podA (sa-a), dialling |dial_port| on destination pods.
  void StartClient(uint16_t dial_port) {
    Start(node1_, "node1", "sa-a", Leaf(ca_, Id("sa-a"), -3600, 86400), dial_port);
  }

  // A connection from |src| (podA) to podB as node1's outbound listener captures it.
  int Outbound(uint16_t real_port, const char* src = kPodA) {
    {
      std::lock_guard<std::mutex> l(node1_.mu);
      node1_.redirect[Ip(kPodB)] = real_port;
    }
    return testing::ConnectFrom(src, kPodB, node1_.proxy->outbound_port());
  }

  // A hand-made HBONE client from podA's address straight to node2's listener, CONNECT to the echo pod.
  testing::ProbeResult Probe(const testing::ProbeOptions& opts, testing::EchoServer& echo) {
    return testing::ProbeHbone(kPodA, kPodB, node2_.proxy->hbone_port(),
                               std::string(kPodB) + ":" + std::to_string(echo.port()), opts);
  }

  // The refusal was the server's TLS layer: the TCP connection was accepted, no CONNECT was answered, nothing reached
  // the pod, and the server counted one TLS failure, of the expected kind. The client saw |alert|, or only the reset
  // that may follow it (the server closes with the rest of the client's flight unread; a reset that arrives before
  // the alert is read discards it).
  void ExpectRefused(const testing::ProbeResult& r, testing::EchoServer& echo, const std::string& alert,
                     TlsFailure kind) {
    EXPECT_TRUE(r.tcp);
    EXPECT_EQ(r.status, 0) << "the server answered a CONNECT";
    EXPECT_TRUE(AlertOrReset(r.error, alert)) << "client saw: " << r.error;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // anything in flight would reach the pod by now
    EXPECT_EQ(echo.accepted(), 0);
    EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), 0u);
    EXPECT_GE(node2_.proxy->stats().hbone_accepted.load(), 1u);
    EXPECT_EQ(node2_.proxy->stats().tls_failures.load(), 1u);
    auto kinds = node2_.observer->tls_failures();
    ASSERT_EQ(kinds.size(), 1u);
    EXPECT_STREQ(TlsFailureName(kinds[0]), TlsFailureName(kind));
  }

  // The same server serves a valid client: the harness can succeed, so the refusal above was the point.
  void ExpectValidClientServed(testing::EchoServer& echo) {
    tls::Credentials good = Leaf(ca_, Id("sa-a"), -3600, 86400);
    testing::ProbeOptions opts;
    opts.creds = &good;
    auto r = Probe(opts, echo);
    EXPECT_TRUE(r.handshake) << r.error;
    EXPECT_EQ(r.version, TLS1_3_VERSION);
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.server_cert.spiffe_id, Id("sa-b"));
    for (int i = 0; i < 100 && echo.accepted() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(echo.accepted(), 1);
    ASSERT_EQ(echo.peers().size(), 1u);
    EXPECT_EQ(echo.peers()[0], kPodA);
    EXPECT_EQ(node2_.proxy->stats().hbone_streams_accepted.load(), 1u);
  }

  void TearDown() override {
    if (node1_.proxy) node1_.proxy->Stop();
    if (node2_.proxy) node2_.proxy->Stop();
  }

  testing::TestCa ca_ = testing::MakeCa("mesh root");
  Node node1_;
  Node node2_;
};

// ---------------------------------------------------------------- the HBONE listener refuses

TEST_F(HboneTlsTest, ServerServesAValidClient) {
  StartServer();
  testing::EchoServer echo(kPodB);
  ExpectValidClientServed(echo);
  EXPECT_EQ(node2_.proxy->stats().tls_failures.load(), 0u);
}

TEST_F(HboneTlsTest, ServerRefusesAClientWithoutACertificate) {
  StartServer();
  testing::EchoServer echo(kPodB);
  testing::ProbeOptions opts;  // no certificate
  auto r = Probe(opts, echo);
  // TLS 1.3: the client's side of the handshake completes; the server then answers certificate_required.
  ExpectRefused(r, echo, "CERTIFICATE_REQUIRED", TlsFailure::kProtocol);
  ExpectValidClientServed(echo);
}

TEST_F(HboneTlsTest, ServerRefusesTls12EvenWithAValidCertificate) {
  StartServer();
  testing::EchoServer echo(kPodB);
  tls::Credentials good = Leaf(ca_, Id("sa-a"), -3600, 86400);
  testing::ProbeOptions opts;
  opts.creds = &good;
  opts.max_version = TLS1_2_VERSION;
  auto r = Probe(opts, echo);
  EXPECT_FALSE(r.handshake) << "negotiated version " << std::hex << r.version;
  ExpectRefused(r, echo, "PROTOCOL_VERSION", TlsFailure::kProtocol);
  ExpectValidClientServed(echo);  // the very same certificate, over TLS 1.3
}

TEST_F(HboneTlsTest, ServerRefusesAnExpiredClientCertificate) {
  StartServer();
  testing::EchoServer echo(kPodB);
  tls::Credentials expired = Leaf(ca_, Id("sa-a"), -7200, -60);  // valid chain, notAfter a minute ago
  std::string why;
  EXPECT_FALSE(tls::VerifyChain(expired.chain, testing::Roots(ca_), &why));
  EXPECT_NE(why.find("expired"), std::string::npos) << why;  // expired, and nothing else wrong with it
  testing::ProbeOptions opts;
  opts.creds = &expired;
  auto r = Probe(opts, echo);
  ExpectRefused(r, echo, "CERTIFICATE_EXPIRED", TlsFailure::kPeerVerification);
  ExpectValidClientServed(echo);
}

TEST_F(HboneTlsTest, ServerRefusesAClientCertificateOfAnotherCa) {
  StartServer();
  testing::EchoServer echo(kPodB);
  testing::TestCa other = testing::MakeCa("other root");
  tls::Credentials foreign = Leaf(other, Id("sa-a"), -3600, 86400);  // the right SPIFFE ID, the wrong CA
  testing::ProbeOptions opts;
  opts.creds = &foreign;
  auto r = Probe(opts, echo);
  ExpectRefused(r, echo, "UNKNOWN_CA", TlsFailure::kPeerVerification);
  ExpectValidClientServed(echo);
}

TEST_F(HboneTlsTest, ServerRefusesAClientCertificateOfAnotherTrustDomain) {
  StartServer();
  testing::EchoServer echo(kPodB);
  tls::Credentials foreign = Leaf(ca_, Id("sa-a", "other.domain"), -3600, 86400);  // the mesh CA, another domain
  testing::ProbeOptions opts;
  opts.creds = &foreign;
  auto r = Probe(opts, echo);
  ExpectRefused(r, echo, "ALERT_HANDSHAKE_FAILURE", TlsFailure::kPeerVerification);
  ExpectValidClientServed(echo);
}

// ---------------------------------------------------------------- the HBONE client refuses

class HboneClientTlsTest : public HboneTlsTest {
 protected:
  // node1 dials podB:<rogue port>, where a rogue server presents |creds|. Returns what the rogue saw; the downstream
  // connection's fate is in |closed_without_data|.
  testing::RogueHboneServer::Seen DialRogue(const tls::Credentials& creds, bool* closed_without_data) {
    testing::RogueHboneServer rogue(kPodB, creds, testing::Roots(ca_), kTd);
    StartClient(rogue.port());
    int fd = Outbound(8080);
    EXPECT_GE(fd, 0);
    if (fd < 0) return rogue.seen();
    send(fd, "MARKER", 6, MSG_NOSIGNAL);  // what a refusing client must never hand to the server
    *closed_without_data = testing::ClosedWithoutData(fd, 1500);
    close(fd);
    EXPECT_TRUE(rogue.WaitFinished(1, 8000)) << "the rogue server never finished a connection";
    return rogue.seen();
  }

  // The rogue was dialled and a TLS handshake began with it, which node1 broke off (with |alert|, or the reset behind
  // it) because of the certificate (|reason|, from node1's own verifier); no application byte reached the rogue.
  void ExpectRefusedAfterDialling(const testing::RogueHboneServer::Seen& seen, bool closed_without_data,
                                  const std::string& alert, const std::string& reason) {
    EXPECT_TRUE(closed_without_data);
    EXPECT_EQ(seen.connections, 1);
    EXPECT_EQ(seen.client_hellos, 1) << "node1 never started a TLS handshake with the rogue";
    ASSERT_EQ(seen.peers.size(), 1u);
    EXPECT_EQ(seen.peers[0], kPodA);  // it was node1 (bound to podA's address) that dialled
    EXPECT_EQ(seen.handshakes, 0);
    EXPECT_EQ(seen.app_bytes, 0u) << testing::Hex(seen.app_data);
    ASSERT_EQ(seen.errors.size(), 1u);
    EXPECT_TRUE(AlertOrReset(seen.errors[0], alert)) << seen.errors[0];
    EXPECT_EQ(node1_.proxy->stats().tls_failures.load(), 1u);
    EXPECT_EQ(node1_.proxy->stats().hbone_sessions_opened.load(), 0u);
    auto kinds = node1_.observer->tls_failures();
    ASSERT_EQ(kinds.size(), 1u);
    EXPECT_STREQ(TlsFailureName(kinds[0]), TlsFailureName(TlsFailure::kPeerVerification));
    ASSERT_TRUE(node1_.observer->WaitClosed(1, 3000));
    auto errors = node1_.observer->errors();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find(reason), std::string::npos) << errors[0];
  }
};

// Control: a rogue holding podB's real, valid certificate gets the handshake and node1's HTTP/2 CONNECT.
TEST_F(HboneClientTlsTest, ClientTalksToAServerWithTheExpectedIdentity) {
  bool closed = false;
  auto seen = DialRogue(Leaf(ca_, Id("sa-b"), -3600, 86400), &closed);
  EXPECT_EQ(seen.connections, 1);
  EXPECT_EQ(seen.client_hellos, 1);
  EXPECT_EQ(seen.handshakes, 1) << (seen.errors.empty() ? "" : seen.errors[0]);
  EXPECT_EQ(seen.app_data.rfind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0), 0u);
  EXPECT_EQ(node1_.proxy->stats().tls_failures.load(), 0u);
  EXPECT_EQ(node1_.proxy->stats().hbone_streams_opened.load(), 1u);
}

TEST_F(HboneClientTlsTest, ClientRefusesAServerWithAnExpiredCertificate) {
  bool closed = false;
  auto seen = DialRogue(Leaf(ca_, Id("sa-b"), -7200, -60), &closed);
  ExpectRefusedAfterDialling(seen, closed, "CERTIFICATE_EXPIRED", "certificate has expired");
}

TEST_F(HboneClientTlsTest, ClientRefusesAServerWithAnotherSpiffeId) {
  bool closed = false;
  // The mesh CA, the trust domain, valid dates: only the identity is not podB's (sa-b).
  auto seen = DialRogue(Leaf(ca_, Id("sa-x"), -3600, 86400), &closed);
  ExpectRefusedAfterDialling(seen, closed, "ALERT_HANDSHAKE_FAILURE",
                             "peer identity " + Id("sa-x") + " is not the expected " + Id("sa-b"));
}

TEST_F(HboneClientTlsTest, ClientRefusesAServerFromAnotherCa) {
  testing::TestCa other = testing::MakeCa("other root");
  bool closed = false;
  auto seen = DialRogue(Leaf(other, Id("sa-b"), -3600, 86400), &closed);
  ExpectRefusedAfterDialling(seen, closed, "UNKNOWN_CA", "certificate chain at depth 0");
}

TEST_F(HboneClientTlsTest, ClientRefusesAServerOfAnotherTrustDomain) {
  bool closed = false;
  auto seen = DialRogue(Leaf(ca_, Id("sa-b", "other.domain"), -3600, 86400), &closed);
  ExpectRefusedAfterDialling(seen, closed, "ALERT_HANDSHAKE_FAILURE", "is not in trust domain cluster.local");
}

// ---------------------------------------------------------------- rotation

// A rotation (the cert store swapping podB's certificate, as the agent's cert manager does at half-life) changes the
// certificate the HBONE listener presents in the handshake; a connection opened before it and new ones keep working.
TEST_F(HboneTlsTest, RotationChangesThePresentedCertificateAndConnectionsKeepWorking) {
  tls::Credentials first = Leaf(ca_, Id("sa-b"), -3600, 86400);
  testing::CertInfo first_info = testing::Describe(first.chain[0].get());
  Start(node2_, "node2", "sa-b", std::move(first));
  StartClient(node2_.proxy->hbone_port());
  testing::EchoServer echo(kPodB);
  tls::Credentials probe_creds = Leaf(ca_, Id("sa-a"), -3600, 86400);
  testing::ProbeOptions opts;
  opts.creds = &probe_creds;

  int before = Outbound(echo.port());  // a connection that lives across the rotation
  ASSERT_GE(before, 0);
  EXPECT_EQ(Roundtrip(before, "before rotation"), "before rotation");
  auto p1 = Probe(opts, echo);
  EXPECT_EQ(p1.status, 200) << p1.error;
  EXPECT_TRUE(p1.server_cert.der == first_info.der)
      << "the listener presents serial " << p1.server_cert.serial << ", not the loaded " << first_info.serial;

  // The rotated certificate: a new key, a new serial, a later notBefore.
  tls::Credentials second = Leaf(ca_, Id("sa-b"), -60, 86400);
  testing::CertInfo second_info = testing::Describe(second.chain[0].get());
  agent::IdentityMaterial m;
  m.id = ParseId(Id("sa-b"));
  m.creds = std::move(second);
  std::string err;
  ASSERT_TRUE(node2_.certs.Update(std::move(m), &err)) << err;

  auto p2 = Probe(opts, echo);
  EXPECT_EQ(p2.status, 200) << p2.error;
  ASSERT_FALSE(p2.server_cert.empty());
  EXPECT_TRUE(p2.server_cert.der == second_info.der)
      << "after the rotation the listener presents serial " << p2.server_cert.serial << ", not the rotated "
      << second_info.serial;
  EXPECT_NE(p2.server_cert.serial, p1.server_cert.serial);
  EXPECT_NE(testing::Hex(p2.server_cert.public_key), testing::Hex(p1.server_cert.public_key));
  EXPECT_NE(p2.server_cert.not_before, p1.server_cert.not_before);
  EXPECT_EQ(p2.server_cert.spiffe_id, Id("sa-b"));

  // The connection opened before the rotation still works (its TLS session keeps the old certificate), and so do
  // new ones: from podA (its pooled HBONE connection) and from podA2, whose pool key is new, so node1 opens a new
  // HBONE connection and verifies the rotated certificate.
  EXPECT_EQ(Roundtrip(before, "after rotation"), "after rotation");
  uint64_t sessions = node1_.proxy->stats().hbone_sessions_opened.load();
  for (const char* src : {kPodA, kPodA2}) {
    int after = Outbound(echo.port(), src);
    ASSERT_GE(after, 0);
    EXPECT_EQ(testing::Exchange(after, "new connection"), "new connection") << src;
    close(after);
  }
  EXPECT_GT(node1_.proxy->stats().hbone_sessions_opened.load(), sessions);
  close(before);
  EXPECT_EQ(node1_.proxy->stats().tls_failures.load() + node2_.proxy->stats().tls_failures.load(), 0u);
}

}  // namespace
}  // namespace zm::proxy
