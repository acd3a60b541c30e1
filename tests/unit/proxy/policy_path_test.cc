// NormalizePolicyPath: what TrafficPermission http rules see of a request-target.
#include "agent/proxy/policy_path.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace zm::proxy {
namespace {

std::string Norm(const char* target) {
  std::string path, error;
  EXPECT_TRUE(NormalizePolicyPath(target, &path, &error)) << target << ": " << error;
  return path;
}

TEST(PolicyPath, Normalizes) {
  EXPECT_EQ(Norm("/public/x?a=1"), "/public/x");
  EXPECT_EQ(Norm("/public/../private"), "/private");
  EXPECT_EQ(Norm("/public/./x/../y"), "/public/y");
  EXPECT_EQ(Norm("/../../etc"), "/etc");
  EXPECT_EQ(Norm("/a/.."), "/");
  EXPECT_EQ(Norm("/%70ublic/%2e%2e/private"), "/private");  // encoded unreserved characters are decoded first
  EXPECT_EQ(Norm("/a%20b/%c3%a9"), "/a%20b/%C3%A9");        // other escapes stay, upper-cased
  EXPECT_EQ(Norm("http://web.shop/api/x?q"), "/api/x");     // absolute-form
  EXPECT_EQ(Norm("http://web.shop?q"), "/");
  EXPECT_EQ(Norm("*"), "*");
  EXPECT_EQ(Norm("web.shop:443"), "");  // CONNECT: no path
  EXPECT_EQ(Norm("/a//b"), "/a//b");    // slashes are not merged (Istio's default)
}

// Only the RFC 3986 unreserved set (ASCII letters, digits, "-._~") is decoded; every other escape stays, upper-cased.
TEST(PolicyPath, DecodesExactlyTheUnreservedBytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int c = 1; c < 256; ++c) {
    if (c == '/' || c == '\\') continue;  // refused (next test)
    const std::string target = std::string("/a%") + kHex[c >> 4] + kHex[c & 15] + "b";
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    std::string upper = target;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_EQ(Norm(target.c_str()),
              unreserved ? "/a" + std::string(1, static_cast<char>(c)) + "b" : "/a" + upper.substr(2, 3) + "b")
        << target;
  }
}

TEST(PolicyPath, RefusesWhatCannotBeMatchedSafely) {
  for (const char* bad : {"/public%2F..%2Fprivate", "/a%2fb", "/a%5Cb", "/a%00", "/a%zz", "/a%2", "/a%"}) {
    std::string path, error;
    EXPECT_FALSE(NormalizePolicyPath(bad, &path, &error)) << bad << " -> " << path;
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace zm::proxy
