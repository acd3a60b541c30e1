// mTLS helpers: handshakes over socketpairs between in-test PKIs.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "common/tls/context.h"
#include "common/tls/spiffe.h"
#include "tests/unit/proxy/test_certs.h"
#include "tests/unit/spiffe_cases.h"

namespace zm {
namespace {

using testing::MakeCa;
using testing::MakeLeaf;
using testing::Roots;

constexpr char kTd[] = "cluster.local";
const char* kA = "spiffe://cluster.local/ns/default/sa/sa-a";
const char* kB = "spiffe://cluster.local/ns/default/sa/sa-b";

TEST(SpiffeId, ParsesAndFormats) {
  tls::SpiffeId id;
  std::string err;
  ASSERT_TRUE(tls::ParseSpiffeId("spiffe://cluster.local/ns/default/sa/sa-a", &id, &err)) << err;
  EXPECT_EQ(id.trust_domain, "cluster.local");
  EXPECT_EQ(id.ns, "default");
  EXPECT_EQ(id.sa, "sa-a");
  EXPECT_EQ(id.ToString(), "spiffe://cluster.local/ns/default/sa/sa-a");
}

TEST(SpiffeId, RejectsMalformed) {
  const char* bad[] = {
      "",
      "spiffe://",
      "SPIFFE://cluster.local/ns/a/sa/b",
      "https://cluster.local/ns/a/sa/b",
      "spiffe://cluster.local",
      "spiffe:///ns/a/sa/b",
      "spiffe://Cluster.local/ns/a/sa/b",
      "spiffe://cluster.local/ns/a/sa/",
      "spiffe://cluster.local/ns//sa/b",
      "spiffe://cluster.local/ns/a/sa/b/c",
      "spiffe://cluster.local/ns/a/sa/b?x=1",
      "spiffe://cluster.local/ns/a/sa/b#f",
      "spiffe://cluster.local/ns/a%2f/sa/b",
      "spiffe://cluster.local/ns/-a/sa/b",
      "spiffe://cluster.local/sa/b/ns/a",
      "spiffe://cluster.local:443/ns/a/sa/b",
      "spiffe://user@cluster.local/ns/a/sa/b",
  };
  for (const char* s : bad) {
    tls::SpiffeId id;
    std::string err;
    EXPECT_FALSE(tls::ParseSpiffeId(s, &id, &err)) << s;
    EXPECT_FALSE(err.empty()) << s;
  }
}

// The shared table: the CA runs the same rows through its CSR check (tests/unit/controller/spiffe_rule_test.cc).
TEST(SpiffeId, OneRuleTable) {
  for (const auto& c : test::SpiffeCases()) {
    tls::SpiffeId id;
    std::string err;
    bool ok = tls::ParseSpiffeId(c.id, &id, &err);
    if (c.error.empty()) {
      EXPECT_TRUE(ok) << c.id << ": " << err;
      EXPECT_EQ(id.ToString(), c.id);
    } else {
      EXPECT_FALSE(ok) << c.id;
      EXPECT_NE(err.find(c.error), std::string::npos) << c.id << "\n got: " << err << "\nwant: " << c.error;
    }
  }
  std::string err;
  EXPECT_FALSE(tls::ValidNamespace("kube.system", &err));
  EXPECT_TRUE(tls::ValidServiceAccount("kube.system", &err)) << err;
}

struct HandshakeResult {
  bool ok = false;
  std::string reason;
  tls::SpiffeId peer;
};

// Runs server and client on a socketpair; after the handshake the client writes one byte and the server echoes it,
// so a refusal by the server (which TLS 1.3 reports after the client's handshake completes) is seen by both.
std::pair<HandshakeResult, HandshakeResult> Handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx,
                                                      const tls::SpiffeId* expected) {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto server = std::async(std::launch::async, [&] {
    HandshakeResult r;
    bssl::UniquePtr<SSL> ssl(SSL_new(server_ctx));
    SSL_set_fd(ssl.get(), fds[0]);
    char b;
    if (SSL_accept(ssl.get()) == 1 && SSL_read(ssl.get(), &b, 1) == 1 && SSL_write(ssl.get(), &b, 1) == 1) {
      std::string err;
      r.ok = tls::PeerIdentity(ssl.get(), &r.peer, &err) && tls::NegotiatedH2(ssl.get());
    }
    r.reason = tls::VerifyFailureReason(ssl.get());
    shutdown(fds[0], SHUT_RDWR);
    return r;
  });
  HandshakeResult c;
  {
    bssl::UniquePtr<SSL> ssl(SSL_new(client_ctx));
    if (expected) tls::SetExpectedPeer(ssl.get(), *expected);
    SSL_set_fd(ssl.get(), fds[1]);
    char b = 'x';
    if (SSL_connect(ssl.get()) == 1 && SSL_write(ssl.get(), &b, 1) == 1 && SSL_read(ssl.get(), &b, 1) == 1) {
      std::string err;
      c.ok = tls::PeerIdentity(ssl.get(), &c.peer, &err) && tls::NegotiatedH2(ssl.get());
    }
    c.reason = tls::VerifyFailureReason(ssl.get());
    shutdown(fds[1], SHUT_RDWR);
  }
  HandshakeResult s = server.get();
  close(fds[0]);
  close(fds[1]);
  return {s, c};
}

bssl::UniquePtr<SSL_CTX> Server(const tls::Credentials& c, const testing::TestCa& trust, const char* td = kTd) {
  std::string err;
  auto ctx = tls::NewServerContext(c, Roots(trust), td, &err);
  EXPECT_TRUE(ctx) << err;
  return ctx;
}
bssl::UniquePtr<SSL_CTX> Client(const tls::Credentials& c, const testing::TestCa& trust, const char* td = kTd) {
  std::string err;
  auto ctx = tls::NewClientContext(c, Roots(trust), td, &err);
  EXPECT_TRUE(ctx) << err;
  return ctx;
}

tls::SpiffeId Id(const char* s) {
  tls::SpiffeId id;
  std::string err;
  EXPECT_TRUE(tls::ParseSpiffeId(s, &id, &err)) << err;
  return id;
}

class TlsTest : public ::testing::Test {
 protected:
  testing::TestCa ca_ = MakeCa("mesh root");
  testing::TestCa other_ca_ = MakeCa("other root");
};

TEST_F(TlsTest, GoodHandshakeExposesBothIdentities) {
  auto a = MakeLeaf(ca_, {kA});
  auto b = MakeLeaf(ca_, {kB});
  tls::SpiffeId want = Id(kB);
  auto [s, c] = Handshake(Server(b, ca_).get(), Client(a, ca_).get(), &want);
  EXPECT_TRUE(s.ok) << s.reason;
  EXPECT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(s.peer.ToString(), kA);
  EXPECT_EQ(c.peer.ToString(), kB);
}

TEST_F(TlsTest, ServerFromOtherCaRefusedByClient) {
  auto a = MakeLeaf(ca_, {kA});
  auto b = MakeLeaf(other_ca_, {kB});
  tls::SpiffeId want = Id(kB);
  auto [s, c] = Handshake(Server(b, ca_).get(), Client(a, ca_).get(), &want);
  EXPECT_FALSE(c.ok);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(c.reason.find("certificate chain"), std::string::npos) << c.reason;
}

TEST_F(TlsTest, ClientFromOtherCaRefusedByServer) {
  auto a = MakeLeaf(other_ca_, {kA});
  auto b = MakeLeaf(ca_, {kB});
  tls::SpiffeId want = Id(kB);
  auto [s, c] = Handshake(Server(b, ca_).get(), Client(a, ca_).get(), &want);
  EXPECT_FALSE(s.ok);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(s.reason.find("certificate chain"), std::string::npos) << s.reason;
}

TEST_F(TlsTest, WrongTrustDomainRefusedBothWays) {
  auto a = MakeLeaf(ca_, {kA});
  auto b_foreign = MakeLeaf(ca_, {"spiffe://other.domain/ns/default/sa/sa-b"});
  {
    tls::SpiffeId want = Id(kB);
    auto [s, c] = Handshake(Server(b_foreign, ca_).get(), Client(a, ca_).get(), &want);
    EXPECT_FALSE(c.ok);
    EXPECT_FALSE(s.ok);
    EXPECT_NE(c.reason.find("not in trust domain"), std::string::npos) << c.reason;
  }
  {
    auto a_foreign = MakeLeaf(ca_, {"spiffe://other.domain/ns/default/sa/sa-a"});
    auto b = MakeLeaf(ca_, {kB});
    auto [s, c] = Handshake(Server(b, ca_).get(), Client(a_foreign, ca_).get(), nullptr);
    EXPECT_FALSE(s.ok);
    EXPECT_FALSE(c.ok);
    EXPECT_NE(s.reason.find("not in trust domain"), std::string::npos) << s.reason;
  }
}

TEST_F(TlsTest, UnexpectedServerIdentityRefused) {
  auto a = MakeLeaf(ca_, {kA});
  auto b = MakeLeaf(ca_, {kB});
  tls::SpiffeId want = Id("spiffe://cluster.local/ns/default/sa/sa-c");
  auto [s, c] = Handshake(Server(b, ca_).get(), Client(a, ca_).get(), &want);
  EXPECT_FALSE(c.ok);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(c.reason.find("not the expected"), std::string::npos) << c.reason;
}

TEST_F(TlsTest, BadSanShapesRefused) {
  auto b = MakeLeaf(ca_, {kB});
  const std::vector<std::vector<std::string>> bad_sans = {
      {}, {kA, kB}, {"spiffe://cluster.local/ns/default"}, {"https://cluster.local/ns/default/sa/sa-a"}};
  for (const auto& sans : bad_sans) {
    auto a = MakeLeaf(ca_, sans);
    auto [s, c] = Handshake(Server(b, ca_).get(), Client(a, ca_).get(), nullptr);
    EXPECT_FALSE(s.ok) << sans.size();
    EXPECT_FALSE(c.ok);
    EXPECT_NE(s.reason.find("peer certificate"), std::string::npos) << s.reason;
  }
}

TEST_F(TlsTest, ContextRejectsBadMaterial) {
  auto a = MakeLeaf(ca_, {kA});
  auto b = MakeLeaf(ca_, {kB});
  tls::Credentials mixed;
  mixed.chain = std::move(a.chain);
  mixed.key = std::move(b.key);
  std::string err;
  EXPECT_FALSE(tls::NewServerContext(mixed, Roots(ca_), kTd, &err));
  EXPECT_NE(err.find("does not match"), std::string::npos) << err;
  auto c = MakeLeaf(ca_, {kB});
  EXPECT_FALSE(tls::NewClientContext(c, {}, kTd, &err));
  EXPECT_EQ(err, "trust bundle is empty");
  EXPECT_FALSE(tls::NewClientContext(c, Roots(ca_), "Bad Domain", &err));
  EXPECT_NE(err.find("trust domain"), std::string::npos) << err;
}

TEST(Pem, RoundTripAndErrors) {
  auto ca = MakeCa("root");
  auto a = MakeLeaf(ca, {kA});
  tls::CertList certs;
  std::string err;
  ASSERT_TRUE(tls::ParsePemCerts(testing::ChainPem(a) + tls::CertToPem(ca.cert.get()), &certs, &err)) << err;
  EXPECT_EQ(certs.size(), 2u);
  bssl::UniquePtr<EVP_PKEY> key;
  ASSERT_TRUE(tls::ParsePemPrivateKey(testing::KeyPem(a), &key, &err)) << err;
  EXPECT_FALSE(tls::ParsePemCerts("hello", &certs, &err));
  EXPECT_EQ(err, "no PEM CERTIFICATE block found");
  EXPECT_FALSE(tls::ParsePemCerts("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &certs, &err));
  EXPECT_FALSE(tls::ParsePemPrivateKey("junk", &key, &err));
}

}  // namespace
}  // namespace zm
