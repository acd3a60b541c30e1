// Join tokens: the hashed file format (and the legacy plaintext one), expiry, every bad input with its error, and the
// reloading file: revocation without a restart, a bad edit keeping the last good set, an open Config stream ended.
#include "controller/auth/join_tokens.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "controller/auth/join_token_file.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/config.grpc.pb.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;
using ctrl::JoinTokenFile;
using ctrl::JoinTokenMatch;
using ctrl::JoinTokens;
using R = JoinTokenMatch::Result;

constexpr const char* kTok1 = "Zq3tJ0l1x9yV4mC7pR2sW8eN5aK6uH0fB3dG1iL7oT9";
constexpr const char* kTok2 = "4b8c2e7d1f3a9b6c5d0e8f7a2b1c4d3e6f9a0b5c8d7e";
constexpr int64_t kExpires = 1798934400;  // 2027-01-03T00:00:00Z

std::string Hashed(const std::string& node, const std::string& token, const std::string& expires = "") {
  std::string e = expires.empty() ? "" : ", expires: \"" + expires + "\"";
  return node + ": {sha256: " + ctrl::JoinTokenSha256Hex(token) + e + "}\n";
}

std::string ParseError(const std::string& text) {
  std::string error;
  auto t = JoinTokens::Parse(text, &error);
  EXPECT_FALSE(t) << text;
  return error;
}

TEST(JoinTokensTest, HashedEntriesMatchTheirTokenOnly) {
  std::string error;
  auto t = JoinTokens::Parse(Hashed("node1", kTok1) + Hashed("node2", kTok2, "2027-01-03T00:00:00Z"), &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->plaintext_count(), 0u);
  auto m = t->Match(kTok1, 0);
  EXPECT_EQ(m.result, R::kValid);
  EXPECT_EQ(m.node, "node1");
  EXPECT_EQ(t->Match(kTok2, 0).node, "node2");
  EXPECT_EQ(t->Match(std::string(kTok1) + "x", 0).result, R::kUnknown);
  EXPECT_EQ(t->Match("", 0).result, R::kUnknown);
  // The digest itself is not a token.
  EXPECT_EQ(t->Match(ctrl::JoinTokenSha256Hex(kTok1), 0).result, R::kUnknown);
}

TEST(JoinTokensTest, BlockFormAndUppercaseHex) {
  std::string hex = ctrl::JoinTokenSha256Hex(kTok1);
  for (auto& c : hex) c = static_cast<char>(toupper(c));
  std::string error;
  auto t = JoinTokens::Parse("node1:\n  sha256: " + hex + "\n  expires: 2027-01-03T00:00:00.5Z\n", &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->Match(kTok1, 0).node, "node1");
  EXPECT_EQ(t->Describe()[0].expires_unix, kExpires);
}

// The chart renders each entry with toJson.
TEST(JoinTokensTest, JsonEntriesAsTheChartRendersThem) {
  std::string error;
  auto t = JoinTokens::Parse(
      "\"node-a\": {\"expires\":\"2027-01-03T00:00:00Z\",\"sha256\":\"" + ctrl::JoinTokenSha256Hex(kTok1) + "\"}\n",
      &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->Match(kTok1, kExpires - 1).node, "node-a");
  EXPECT_EQ(t->Match(kTok1, kExpires).result, R::kExpired);
}

TEST(JoinTokensTest, ExpiredTokensAreRecognizedAndRefused) {
  std::string error;
  auto t = JoinTokens::Parse(Hashed("node1", kTok1, "2027-01-03T00:00:00Z") + Hashed("node2", kTok2), &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->Match(kTok1, kExpires - 1).result, R::kValid);
  auto m = t->Match(kTok1, kExpires);
  EXPECT_EQ(m.result, R::kExpired);
  EXPECT_EQ(m.node, "node1");
  EXPECT_EQ(m.expires_unix, kExpires);
  EXPECT_EQ(t->Match(kTok2, int64_t{4} << 32).result, R::kValid);  // no expires: never
  auto d = t->Describe();
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].node, "node1");
  EXPECT_EQ(d[0].expires_unix, kExpires);
  EXPECT_EQ(d[1].expires_unix, 0);
}

TEST(JoinTokensTest, LegacyPlaintextIsHashedAndReported) {
  std::string error;
  auto t = JoinTokens::Parse(std::string("node1: ") + kTok1 + "\n" + Hashed("node2", kTok2), &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->Match(kTok1, 0).node, "node1");
  EXPECT_EQ(t->Match(kTok2, 0).node, "node2");
  EXPECT_EQ(t->plaintext_count(), 1u);
  auto d = t->Describe();
  EXPECT_TRUE(d[0].plaintext);
  EXPECT_FALSE(d[1].plaintext);
}

TEST(JoinTokensTest, BadInputsSayWhatAndWhere) {
  std::string h1 = ctrl::JoinTokenSha256Hex(kTok1);
  EXPECT_EQ(ParseError("- a\n- b\n"),
            "expected a YAML mapping 'node: {sha256: HEX, expires: TIME}' (or the legacy 'node: token')");
  EXPECT_NE(ParseError("node1: {sha256: [\n").find("bad YAML"), std::string::npos);
  EXPECT_EQ(ParseError(""), "the file has no entries (write '{}' to revoke every token)");
  EXPECT_EQ(ParseError("# only a comment\n"), "the file has no entries (write '{}' to revoke every token)");
  std::string error;
  auto none = JoinTokens::Parse("{}\n", &error);
  ASSERT_TRUE(none) << error;
  EXPECT_EQ(none->size(), 0u);
  EXPECT_EQ(none->Match(kTok1, 0).result, R::kUnknown);
  EXPECT_EQ(
      ParseError(Hashed("node1", kTok1) + "node2: {sha256: abc}\n"),
      "line 2: node 'node2': sha256 must be 64 hex digits (the SHA-256 of the token, as meshctl join-token create "
      "prints it)");
  EXPECT_EQ(ParseError("node1: {sha256: " + std::string(63, 'a') + "g}\n").substr(0, 30),
            "line 1: node 'node1': sha256 m");
  EXPECT_EQ(ParseError("node1: {sha265: " + h1 + "}\n"),
            "line 1: node 'node1': unknown key 'sha265' (expected sha256 and optionally expires)");
  EXPECT_EQ(ParseError("node1: {expires: \"2027-01-03T00:00:00Z\"}\n"),
            "line 1: node 'node1': the entry has no sha256");
  EXPECT_EQ(ParseError("node1: {sha256: [a]}\n"), "line 1: node 'node1': sha256 must be a string");
  EXPECT_EQ(ParseError("node1: [a, b]\n"),
            "line 1: node 'node1': expected {sha256: HEX, expires: TIME} (or a plaintext token)");
  EXPECT_EQ(ParseError("node1: short\n"), "line 1: token for node 'node1' is shorter than 16 characters");
  EXPECT_EQ(ParseError(Hashed("node1", kTok1) + Hashed("node1", kTok2)), "line 2: node 'node1' is listed twice");
  EXPECT_EQ(ParseError(Hashed("node1", kTok1) + "node2: " + kTok1 + "\n"),
            "line 2: token of node 'node2' is also used by another node");
  // Times: each defect named, with the expected form.
  const std::string tail = " (expected an RFC 3339 UTC time such as 2027-01-03T00:00:00Z)";
  EXPECT_EQ(ParseError("node1: {sha256: " + h1 + ", expires: tomorrow}\n"),
            "line 1: node 'node1': expires: 'tomorrow' is not a time" + tail);
  EXPECT_EQ(ParseError("node1: {sha256: " + h1 + ", expires: \"2027-02-30T00:00:00Z\"}\n"),
            "line 1: node 'node1': expires: '2027-02-30T00:00:00Z' is not a valid date and time" + tail);
  EXPECT_EQ(
      ParseError("node1: {sha256: " + h1 + ", expires: \"2027-01-03T00:00:00+01:00\"}\n"),
      "line 1: node 'node1': expires: '2027-01-03T00:00:00+01:00' is not in UTC: write it with a trailing Z" + tail);
  EXPECT_EQ(ParseError("node1: {sha256: " + h1 + ", expires: \"2027-01-03\"}\n"),
            "line 1: node 'node1': expires: '2027-01-03' is not a time" + tail);
  EXPECT_EQ(ParseError("node1: {sha256: " + h1 + ", expires: \"2027-01-03T24:00:00Z\"}\n"),
            "line 1: node 'node1': expires: '2027-01-03T24:00:00Z' is not a valid date and time" + tail);
}

TEST(JoinTokensTest, Rfc3339RoundTrip) {
  int64_t t = 0;
  std::string error;
  ASSERT_TRUE(ctrl::ParseRfc3339Utc("2027-01-03T00:00:00Z", &t, &error)) << error;
  EXPECT_EQ(t, kExpires);
  EXPECT_EQ(ctrl::FormatRfc3339Utc(t), "2027-01-03T00:00:00Z");
  ASSERT_TRUE(ctrl::ParseRfc3339Utc("2028-02-29t12:34:56z", &t, &error)) << error;  // leap day
  EXPECT_EQ(ctrl::FormatRfc3339Utc(t), "2028-02-29T12:34:56Z");
  EXPECT_FALSE(ctrl::ParseRfc3339Utc("2027-02-29T00:00:00Z", &t, &error));
  EXPECT_FALSE(ctrl::ParseRfc3339Utc("2027-01-03T00:00:00.Z", &t, &error));
  EXPECT_FALSE(ctrl::ParseRfc3339Utc("2027-01-03T00:00:00Zjunk", &t, &error));
}

class JoinTokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { RemoveTree(dir_); }
  std::string dir_;
};

TEST_F(JoinTokenFileTest, ReloadRevokesAndKeepsLastGoodOnABadFile) {
  std::string path = dir_ + "/tokens.yaml";
  WriteFile(path, Hashed("node1", kTok1) + Hashed("node2", kTok2));
  std::string error;
  auto f = JoinTokenFile::Open(path, &error);
  ASSERT_TRUE(f) << error;
  EXPECT_FALSE(f->Reload());  // unchanged: not re-read
  EXPECT_EQ(f->Match(kTok2).node, "node2");

  // Revoked: node2's entry removed.
  WriteFile(path, Hashed("node1", kTok1));
  EXPECT_TRUE(f->Reload());
  EXPECT_EQ(f->Match(kTok2).result, R::kUnknown);
  EXPECT_EQ(f->Match(kTok1).node, "node1");

  // A bad edit: the last good set stays, the error (with its line) is kept for reporting.
  WriteFile(path, Hashed("node1", kTok1) + "node2: {sha256: nothex}\n");
  EXPECT_FALSE(f->Reload());
  EXPECT_EQ(f->Match(kTok1).node, "node1");
  EXPECT_NE(f->last_error().find(path + ": line 2: node 'node2': sha256 must be 64 hex digits"), std::string::npos)
      << f->last_error();
  EXPECT_FALSE(f->Reload());  // the same bad version is not re-read

  // Gone: still the last good set.
  std::filesystem::remove(path);
  EXPECT_FALSE(f->Reload());
  EXPECT_EQ(f->Match(kTok1).node, "node1");
  EXPECT_NE(f->last_error().find("No such file"), std::string::npos) << f->last_error();

  // Fixed: in force, error cleared.
  WriteFile(path, Hashed("node2", kTok2, "2027-01-03T00:00:00Z"));
  EXPECT_TRUE(f->Reload());
  EXPECT_EQ(f->last_error(), "");
  EXPECT_EQ(f->Match(kTok1).result, R::kUnknown);
  EXPECT_EQ(f->Match(kTok2, kExpires).result, R::kExpired);
  ASSERT_EQ(f->Describe().size(), 1u);
  EXPECT_EQ(f->Describe()[0].expires_unix, kExpires);
}

TEST_F(JoinTokenFileTest, FirstLoadErrorsNameTheFile) {
  std::string error;
  EXPECT_FALSE(JoinTokenFile::Open(dir_ + "/missing.yaml", &error));
  EXPECT_EQ(error, dir_ + "/missing.yaml: No such file or directory");
  WriteFile(dir_ + "/bad.yaml", "node1: short\n");
  EXPECT_FALSE(JoinTokenFile::Open(dir_ + "/bad.yaml", &error));
  EXPECT_EQ(error, dir_ + "/bad.yaml: line 1: token for node 'node1' is shorter than 16 characters");
}

// Kubernetes Secret volumes: tokens.yaml -> ..data/tokens.yaml, and an update swaps the ..data symlink.
TEST_F(JoinTokenFileTest, SeesASymlinkedDirectorySwap) {
  namespace fs = std::filesystem;
  fs::create_directories(dir_ + "/..v1");
  fs::create_directories(dir_ + "/..v2");
  WriteFile(dir_ + "/..v1/tokens.yaml", Hashed("node1", kTok1) + Hashed("node2", kTok2));
  WriteFile(dir_ + "/..v2/tokens.yaml", Hashed("node1", kTok1));
  fs::create_directory_symlink("..v1", dir_ + "/..data");
  fs::create_symlink("..data/tokens.yaml", dir_ + "/tokens.yaml");
  std::string error;
  auto f = JoinTokenFile::Open(dir_ + "/tokens.yaml", &error);
  ASSERT_TRUE(f) << error;
  f->Watch(std::chrono::milliseconds(50));
  EXPECT_EQ(f->Match(kTok2).node, "node2");
  fs::create_directory_symlink("..v2", dir_ + "/..data_tmp");
  fs::rename(dir_ + "/..data_tmp", dir_ + "/..data");
  EXPECT_TRUE(WaitFor([&] { return f->Match(kTok2).result == R::kUnknown; }, 2000));
  EXPECT_EQ(f->Match(kTok1).node, "node1");
  f->Stop();
}

// The whole path through the controller: an open Config stream of a revoked token ends, new calls are refused, the
// other node is unaffected, and an expired entry is refused with its time.
TEST(JoinTokenRevocationTest, OpenStreamEndsAndNewCallsAreRefused) {
  auto env = NewEnv();
  std::string tokens = env.dir + "/tokens.yaml";
  WriteFile(tokens, Hashed("node1", kTok1) + Hashed("node2", kTok2, "2099-01-01T00:00:00Z"));
  env.Start();
  auto config = v1::Config::NewStub(env.Channel());
  auto open = [&](grpc::ClientContext* ctx, const char* token, const char* node) {
    Auth(ctx, token);
    auto s = config->Stream(ctx);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_node(node);
    s->Write(hello);
    return s;
  };
  grpc::ClientContext c1, c2;
  auto s1 = open(&c1, kTok1, "node1");
  auto s2 = open(&c2, kTok2, "node2");
  auto connected = [&](const std::string& node) {
    for (const auto& a : env.controller->agents().List()) {
      if (a.node() == node) return a.connected();
    }
    return false;
  };
  ASSERT_TRUE(WaitFor([&] { return connected("node1") && connected("node2"); }, 3000));

  // The status API reports each join token's expiry.
  auto status = v1::Status::NewStub(env.Channel());
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kTok1);
    v1::MeshStatus ms;
    ASSERT_TRUE(status->Get(&ctx, v1::GetStatusRequest(), &ms).ok());
    std::map<std::string, int64_t> expiry;
    for (const auto& c : ms.controller().credentials()) {
      if (c.kind() == "join-token") expiry[c.name()] = c.not_after_unix();
    }
    EXPECT_EQ(expiry, (std::map<std::string, int64_t>{{"node1", 0}, {"node2", 4070908800}}));
  }

  // Revoke node2 (its entry removed); node2's stream must end within 2 s.
  std::atomic<bool> s2_ended{false};
  std::thread reader([&] {
    v1::ConfigPush p;
    while (s2->Read(&p)) {
    }
    s2_ended = true;
  });
  auto revoked_at = std::chrono::steady_clock::now();
  WriteFile(tokens, Hashed("node1", kTok1));
  EXPECT_TRUE(WaitFor([&] { return s2_ended.load(); }, 2000));
  auto took = std::chrono::steady_clock::now() - revoked_at;
  if (!s2_ended) c2.TryCancel();
  reader.join();
  EXPECT_FALSE(s2->Finish().ok());  // CANCELLED: the sync API cannot end a stream with a status while it reads
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_FALSE(connected("node2"));
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kTok2);
    v1::MeshStatus ms;
    auto got = status->Get(&ctx, v1::GetStatusRequest(), &ms);
    EXPECT_EQ(got.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(got.error_message(), "unknown join token");
  }
  EXPECT_TRUE(connected("node1"));

  // Expired: node1's entry now expired in 2020; refused with the time, and node1's stream ends too.
  WriteFile(tokens, Hashed("node1", kTok1, "2020-01-01T00:00:00Z"));
  v1::ConfigPush p;
  std::thread reader1([&] {
    while (s1->Read(&p)) {
    }
  });
  EXPECT_TRUE(WaitFor([&] { return !connected("node1"); }, 2000));
  c1.TryCancel();
  reader1.join();
  EXPECT_FALSE(s1->Finish().ok());
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kTok1);
    v1::MeshStatus ms;
    auto got = status->Get(&ctx, v1::GetStatusRequest(), &ms);
    EXPECT_EQ(got.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(got.error_message(), "join token of node 'node1' expired at 2020-01-01T00:00:00Z");
  }
  env.Stop();
  RemoveTree(env.dir);
}

}  // namespace
}  // namespace zm::test
