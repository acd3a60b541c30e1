// meshctl join-token create: argument checks, a fresh 32-byte token each time, and an entry the controller parses
// back to that token, node and expiry (the controller's own parser, not a copy of its rules).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "controller/auth/join_tokens.h"
#include "tools/meshctl/cli.h"
#include "tools/meshctl/commands.h"
#include "tools/meshctl/join_token.h"
#include "tools/meshctl/output.h"

namespace zm::meshctl {
namespace {

bool Parse(std::vector<std::string> args, Invocation* inv, std::string* error) {
  return ParseArgs(
      args, [](const char*) -> const char* { return nullptr; }, inv, error);
}

TEST(JoinToken, ArgumentsAreChecked) {
  Invocation inv;
  std::string error;
  ASSERT_TRUE(Parse({"join-token", "create", "node-1.a_b", "--ttl", "1h", "-o", "json"}, &inv, &error)) << error;
  EXPECT_EQ(inv.args, (std::vector<std::string>{"create", "node-1.a_b"}));
  EXPECT_FALSE(inv.command->needs_controller);
  std::map<std::vector<std::string>, std::string> bad = {
      {{"join-token"}, "join-token needs a subcommand: meshctl join-token create NODE"},
      {{"join-token", "delete", "n"}, "join-token: unknown subcommand 'delete' (expected create)"},
      {{"join-token", "create"}, "join-token create takes exactly one NODE"},
      {{"join-token", "create", "a", "b"}, "join-token create takes exactly one NODE"},
      {{"join-token", "create", "no:de"},
       "node name 'no:de' must be 1-253 letters, digits, '.', '-' or '_', starting with a letter or digit"},
      {{"join-token", "create", "n", "--ttl", "soon"},
       "--ttl: 'soon' is not a positive duration (e.g. 720h, 90d) or 'never'"},
      {{"join-token", "create", "n", "--ttl", "0s"},
       "--ttl: '0s' is not a positive duration (e.g. 720h, 90d) or 'never'"},
      {{"join-token", "create", "n", "--node", "x"}, "unknown flag '--node' for 'join-token'"},
      {{"status", "create"}, "unexpected argument 'create'"},
  };
  for (const auto& [args, want] : bad) {
    Invocation i;
    EXPECT_FALSE(Parse(args, &i, &error));
    EXPECT_EQ(error, want);
  }
}

TEST(JoinToken, EntryParsesBackInTheController) {
  const int64_t now = 1798934400;  // 2027-01-03T00:00:00Z
  auto j = CreateJoinToken("node1", 720 * 3600, now);
  const std::string token = j["token"].get<std::string>();
  EXPECT_EQ(token.size(), 43u);  // 32 bytes, base64url without padding
  EXPECT_EQ(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_EQ(j["sha256"], ctrl::JoinTokenSha256Hex(token));
  EXPECT_EQ(j["expires"], "2027-02-02T00:00:00Z");
  std::string entry = JoinTokenEntry(j);
  EXPECT_EQ(entry, "node1: {sha256: " + j["sha256"].get<std::string>() + ", expires: \"2027-02-02T00:00:00Z\"}");
  std::string error;
  auto parsed = ctrl::JoinTokens::Parse(entry + "\n", &error);
  ASSERT_TRUE(parsed) << error;
  auto m = parsed->Match(token, now);
  EXPECT_EQ(m.result, ctrl::JoinTokenMatch::Result::kValid);
  EXPECT_EQ(m.node, "node1");
  EXPECT_EQ(parsed->Match(token, now + 720 * 3600).result, ctrl::JoinTokenMatch::Result::kExpired);
  // The human output holds the token and exactly that entry.
  std::string text = RenderJoinToken(j);
  EXPECT_NE(text.find("\n" + token + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n" + entry + "\n"), std::string::npos) << text;
  // Never expiring: no expires key.
  auto forever = CreateJoinToken("node2", 0, now);
  EXPECT_TRUE(forever["expires"].is_null());
  EXPECT_EQ(JoinTokenEntry(forever), "node2: {sha256: " + forever["sha256"].get<std::string>() + "}");
  ASSERT_TRUE(ctrl::JoinTokens::Parse(JoinTokenEntry(forever), &error)) << error;
}

TEST(JoinToken, EveryTokenIsFresh) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; i++) seen.insert(CreateJoinToken("n", 60, 0)["token"].get<std::string>());
  EXPECT_EQ(seen.size(), 100u);
}

TEST(JoinToken, RunPrintsJsonAndYamlOffline) {
  Invocation inv;
  std::string error, out, err;
  ASSERT_TRUE(Parse({"join-token", "create", "node1", "-o", "json", "--ttl", "never"}, &inv, &error)) << error;
  EXPECT_EQ(meshctl::Run(inv, &out, &err), kExitOk);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["node"], "node1");
  EXPECT_TRUE(j["expires"].is_null());
  EXPECT_EQ(j["sha256"], ctrl::JoinTokenSha256Hex(j["token"].get<std::string>()));
  Invocation y;
  out.clear();
  ASSERT_TRUE(Parse({"join-token", "create", "node1", "-o", "yaml"}, &y, &error)) << error;
  EXPECT_EQ(meshctl::Run(y, &out, &err), kExitOk);
  EXPECT_NE(out.find("node: node1"), std::string::npos) << out;
  EXPECT_NE(out.find("expires: "), std::string::npos) << out;
  EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace zm::meshctl
