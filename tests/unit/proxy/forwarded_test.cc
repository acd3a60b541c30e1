// RFC 7239 `Forwarded` parsing: every form HBONE peers send, the malformed ones refused with a reason, and random or
// mutated input never crashes or yields an address that is not in the input.
#include "agent/proxy/forwarded.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/proxy/loopback.h"

namespace zm::proxy {
namespace {

using Kind = ForwardedNode::Kind;
using testing::Ip;

std::vector<ForwardedNode> Parse(std::string_view v) {
  std::vector<ForwardedNode> fors;
  std::string err;
  EXPECT_TRUE(ParseForwarded(v, &fors, &err)) << v << ": " << err;
  return fors;
}

std::string Error(std::string_view v) {
  std::vector<ForwardedNode> fors;
  std::string err;
  EXPECT_FALSE(ParseForwarded(v, &fors, &err)) << v;
  EXPECT_FALSE(err.empty()) << v;
  return err;
}

TEST(Forwarded, BareAndQuotedIpv4) {
  for (const char* v : {"for=10.0.0.1", "for=\"10.0.0.1\"", "For=10.0.0.1", "FOR=\"10.0.0.1\"", "  for=10.0.0.1  "}) {
    auto f = Parse(v);
    ASSERT_EQ(f.size(), 1u) << v;
    EXPECT_EQ(f[0].kind, Kind::kIpv4) << v;
    EXPECT_EQ(f[0].ip, Ip("10.0.0.1")) << v;
    EXPECT_FALSE(f[0].has_port) << v;
  }
}

TEST(Forwarded, Ipv4WithPortAsZtunnelSendsIt) {
  auto f = Parse("for=\"10.244.1.11:41234\"");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].kind, Kind::kIpv4);
  EXPECT_EQ(f[0].ip, Ip("10.244.1.11"));
  EXPECT_TRUE(f[0].has_port);
  EXPECT_EQ(f[0].port, 41234);
  // Unquoted: not RFC 7239 (':' is not a token character) but sent in the wild; accepted, same result.
  auto u = Parse("for=10.244.1.11:41234");
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].ip, Ip("10.244.1.11"));
  EXPECT_EQ(u[0].port, 41234);
}

TEST(Forwarded, Ipv6WithAndWithoutPort) {
  auto f = Parse("for=\"[2001:db8:cafe::17]:4711\"");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].kind, Kind::kIpv6);
  EXPECT_EQ(f[0].ip, Ip("2001:db8:cafe::17"));
  EXPECT_EQ(f[0].port, 4711);
  auto g = Parse("for=\"[::1]\"");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].kind, Kind::kIpv6);
  EXPECT_EQ(g[0].ip, Ip("::1"));
  EXPECT_FALSE(g[0].has_port);
  // Brackets hold IPv6 only: an IPv4 address or an IPv4-mapped one is refused, not read as IPv4.
  EXPECT_NE(Error("for=\"[10.0.0.1]:80\"").find("bad IPv6 address"), std::string::npos);
  EXPECT_NE(Error("for=\"[::ffff:10.0.0.1]\"").find("bad IPv6 address"), std::string::npos);
  EXPECT_NE(Error("for=\"[fd00::1%eth0]\"").find("bad IPv6 address"), std::string::npos);
}

TEST(Forwarded, SeveralElementsAndPairs) {
  // The RFC 7239 section 4 examples, plus spaces around ';' (seen in practice).
  auto f = Parse("for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].ip, Ip("192.0.2.43"));
  EXPECT_EQ(f[1].ip, Ip("198.51.100.17"));
  auto g = Parse("proto=http; for=10.0.0.2, for=10.0.0.3");
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].ip, Ip("10.0.0.2"));
  // An element without for=, empty list elements and empty pairs are allowed by the grammar.
  auto h = Parse("by=10.0.0.9;proto=https, , for=\"10.0.0.4:80\";;");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].kind, Kind::kAbsent);
  EXPECT_EQ(h[1].kind, Kind::kIpv4);
  EXPECT_EQ(h[1].port, 80);
}

TEST(Forwarded, UnknownAndObfuscatedNodes) {
  auto f = Parse("for=unknown, for=\"_hidden:_port\", for=\"UNKNOWN:8080\", for=_SEVKISEK");
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].kind, Kind::kUnknown);
  EXPECT_EQ(f[1].kind, Kind::kObfuscated);
  EXPECT_FALSE(f[1].has_port);
  EXPECT_EQ(f[2].kind, Kind::kUnknown);
  EXPECT_EQ(f[2].port, 8080);
  EXPECT_EQ(f[3].kind, Kind::kObfuscated);
}

TEST(Forwarded, QuotedPairsAreUnescaped) {
  auto f = Parse("for=\"10.0.0.\\1:\\80\"");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].ip, Ip("10.0.0.1"));
  EXPECT_EQ(f[0].port, 80);
  // Escaped characters in other parameters are fine too.
  EXPECT_EQ(Parse("host=\"a\\\"b\";for=10.0.0.5")[0].ip, Ip("10.0.0.5"));
}

TEST(Forwarded, MalformedIsRefusedWithAReason) {
  EXPECT_NE(Error("").find("no forwarded element"), std::string::npos);
  EXPECT_NE(Error(" , ,").find("no forwarded element"), std::string::npos);
  EXPECT_NE(Error("for").find("no '='"), std::string::npos);
  EXPECT_NE(Error("for=").find("empty value"), std::string::npos);
  EXPECT_NE(Error("=10.0.0.1").find("parameter name"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1").find("unterminated"), std::string::npos);
  EXPECT_NE(Error("for=10.0.0.1;for=10.0.0.2").find("repeated"), std::string::npos);
  EXPECT_NE(Error("for=10.0.0.1;FOR=10.0.0.2").find("repeated"), std::string::npos);
  EXPECT_NE(Error("for=10.0.0.1 for=10.0.0.2").find("unexpected"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1\"x").find("unexpected"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1:70000\"").find("out of range"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1:\"").find("bad port"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1:8o\"").find("bad port"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1:123456\"").find("bad port"), std::string::npos);
  EXPECT_NE(Error("for=\"[2001:db8::1\"").find("unterminated IPv6"), std::string::npos);
  EXPECT_NE(Error("for=\"[2001:db8::1]x\"").find("after the IPv6"), std::string::npos);
  EXPECT_NE(Error("for=\"[10.0.0.1]\"").find("bad IPv6"), std::string::npos);
  EXPECT_NE(Error("for=example.com").find("not an IPv4 address"), std::string::npos);
  EXPECT_NE(Error("for=10.0.0.256").find("not an IPv4 address"), std::string::npos);
  EXPECT_NE(Error("for=010.0.0.1").find("not an IPv4 address"), std::string::npos);
  EXPECT_NE(Error("for=_").find("not an IPv4 address"), std::string::npos);
  EXPECT_NE(Error("for=\"\"").find("empty node"), std::string::npos);
  EXPECT_NE(Error("for=\"10.0.0.1\x01\"").find("control character"), std::string::npos);
  std::string many;
  for (size_t i = 0; i <= kMaxForwardedElements; ++i) many += "for=10.0.0.1,";
  EXPECT_NE(Error(many).find("more than"), std::string::npos);
}

TEST(Forwarded, FormatRoundTrips) {
  EXPECT_EQ(FormatForwardedFor(Ip("10.244.1.11"), 41234), "for=\"10.244.1.11:41234\"");
  EXPECT_EQ(FormatForwardedFor(Ip("10.244.1.11"), 0), "for=\"10.244.1.11\"");
  auto f = Parse(FormatForwardedFor(Ip("10.1.2.3"), 65535));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].ip, Ip("10.1.2.3"));
  EXPECT_EQ(f[0].port, 65535);
  // IPv6 is bracketed, with or without a port (RFC 7239 section 6).
  EXPECT_EQ(FormatForwardedFor(Ip("fd00:10:244:1::b"), 41234), "for=\"[fd00:10:244:1::b]:41234\"");
  EXPECT_EQ(FormatForwardedFor(Ip("fd00:10:244:1::b"), 0), "for=\"[fd00:10:244:1::b]\"");
  auto g = Parse(FormatForwardedFor(Ip("fd00:10:244:1::b"), 41234));
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].kind, Kind::kIpv6);
  EXPECT_EQ(g[0].ip, Ip("fd00:10:244:1::b"));
  EXPECT_EQ(g[0].port, 41234);
}

// Fuzz-style (the repository's pattern: seeded random and mutated inputs in a unit test). An accepted IPv4 node must
// come from the text: an address the parser invents could be used to speak for another workload.
TEST(Forwarded, RandomAndMutatedInputNeverCrashesOrInventsAddresses) {
  std::mt19937 rng(7239);
  const std::string seeds[] = {"for=\"10.244.1.11:41234\"", "for=10.0.0.1, for=\"[::1]:80\";proto=http",
                               "by=_x;for=unknown;host=\"a\\\"b\"", "for=\"_hidden:_p\""};
  const char alphabet[] = "for=\"[]:;,._\\ 0123456789abcdefFOR\t";
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string in = seeds[rng() % 4];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = in.empty() ? 0 : rng() % in.size();
      switch (rng() % 3) {
        case 0:
          if (!in.empty()) in[pos] = alphabet[rng() % (sizeof(alphabet) - 1)];
          break;
        case 1:
          in.insert(pos, 1, alphabet[rng() % (sizeof(alphabet) - 1)]);
          break;
        default:
          if (!in.empty()) in.erase(pos, 1);
      }
    }
    if (i % 5 == 0) {
      in.resize(rng() % 48);
      for (auto& c : in) c = static_cast<char>(rng() & 0xff);
    }
    std::vector<ForwardedNode> fors;
    std::string err;
    if (!ParseForwarded(in, &fors, &err)) {
      EXPECT_FALSE(err.empty()) << in;
      continue;
    }
    ++accepted;
    EXPECT_FALSE(fors.empty());
    std::string unescaped;
    for (char c : in) {
      if (c != '\\') unescaped += c;
    }
    for (const auto& f : fors) {
      if (f.kind != Kind::kIpv4) continue;
      // Quoted-pair escapes aside, the dotted quad appears verbatim.
      EXPECT_NE(unescaped.find(f.ip.ToString()), std::string::npos) << in;
    }
  }
  EXPECT_GT(accepted, 100);  // the mutations keep plenty of inputs valid: the accepting paths are exercised
}

}  // namespace
}  // namespace zm::proxy
