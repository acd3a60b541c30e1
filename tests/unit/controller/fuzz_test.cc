// Fuzz-ish robustness: random and mutated CSRs, random manifests, and raw garbage at the gRPC port.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "controller/ca/csr_check.h"
#include "controller/manifest/manifest.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/identity.grpc.pb.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;

const char* kWebId = "spiffe://cluster.local/ns/shop/sa/web";

std::string RandomBytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// proto3 strings must be UTF-8 (the client library refuses to send anything else): random 7-bit text.
std::string RandomAscii(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0x7f);
  return s;
}

// Flips a few bytes of the base64 body (keeps the PEM frame so the DER parser is exercised).
std::string Mutate(std::mt19937& rng, std::string pem) {
  size_t begin = pem.find('\n') + 1, end = pem.rfind("-----END");
  int flips = 1 + static_cast<int>(rng() % 4);
  static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < flips; i++) {
    size_t pos = begin + rng() % (end - begin);
    if (pem[pos] != '\n') pem[pos] = kB64[rng() % 64];
  }
  return pem;
}

TEST(Fuzz, CsrCheckNeverCrashes) {
  std::mt19937 rng(1234);
  std::string good = MakeCsr({.uris = {kWebId}});
  ASSERT_TRUE(ca::CheckCsr(good, "cluster.local").ok);
  int accepted = 0;
  for (int i = 0; i < 3000; i++) {
    std::string input;
    switch (i % 3) {
      case 0:
        input = RandomBytes(rng, rng() % 2048);
        break;
      case 1:
        input = "-----BEGIN CERTIFICATE REQUEST-----\n" + RandomBytes(rng, rng() % 600) +
                "\n-----END CERTIFICATE REQUEST-----\n";
        break;
      default:
        input = Mutate(rng, good);
    }
    auto c = ca::CheckCsr(input, "cluster.local");
    if (c.ok) {
      accepted++;
      EXPECT_EQ(c.id.ToString(), kWebId);  // whatever got through still says exactly what was checked
    } else {
      EXPECT_FALSE(c.error.empty());
    }
  }
  EXPECT_LT(accepted, 300);
}

TEST(Fuzz, ManifestDecoderNeverThrows) {
  std::mt19937 rng(99);
  std::string base = WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11", "web");
  for (int i = 0; i < 2000; i++) {
    std::string text = base;
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; e++) {
      size_t pos = rng() % text.size();
      static const char kChars[] = ":-[]{}\n #&*!|>'\"%@`,?0a.\t";
      text[pos] = (rng() % 4 == 0) ? static_cast<char>(rng() & 0xff) : kChars[rng() % (sizeof(kChars) - 1)];
    }
    manifest::Result r;
    EXPECT_NO_THROW(manifest::DecodeText(text, "f.yaml", {}, &r));
    EXPECT_NO_THROW(manifest::CheckSet(&r));
    for (const auto& err : r.errors) EXPECT_FALSE(err.reason.empty());
  }
}

TEST(Fuzz, ServerSurvivesGarbage) {
  auto env = NewEnv();
  WriteFile(env.manifests + "/a.yaml", WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11"));
  env.Start(false);
  std::mt19937 rng(7);
  // Raw TCP garbage: random bytes, a plaintext HTTP/2 preface, an HTTP/1 request, a truncated TLS record.
  const std::string payloads[] = {
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + RandomBytes(rng, 200),
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + RandomBytes(rng, 100),
  };
  for (int i = 0; i < 60; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(env.controller->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    std::string p = i < 3 ? payloads[i] : RandomBytes(rng, 1 + rng() % 4096);
    (void)!send(fd, p.data(), p.size(), MSG_NOSIGNAL);
    close(fd);
  }
  // Random CSRs through the real API with valid credentials.
  auto stub = v1::Identity::NewStub(env.Channel());
  std::string good = MakeCsr({.uris = {kWebId}});
  for (int i = 0; i < 150; i++) {
    grpc::ClientContext ctx;
    Auth(&ctx, kTokenNode1);
    v1::SignRequest req;
    req.set_csr_pem(i % 2 ? RandomAscii(rng, rng() % 3000) : Mutate(rng, good));
    req.set_ttl_seconds(static_cast<uint32_t>(rng()));
    v1::SignResponse resp;
    auto st = stub->Sign(&ctx, req, &resp);
    EXPECT_NE(st.error_code(), grpc::StatusCode::INTERNAL) << st.error_message();
    EXPECT_NE(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  }
  // Still serving.
  grpc::ClientContext ctx;
  Auth(&ctx, kTokenNode1);
  v1::SignRequest req;
  req.set_csr_pem(good);
  v1::SignResponse resp;
  auto st = stub->Sign(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  env.Stop();
  RemoveTree(env.dir);
}

}  // namespace
}  // namespace zm::test
