// TrafficPermission spec.http decoding (issue 17): what is accepted, and the precise error for each bad input.
#include <gtest/gtest.h>

#include "controller/manifest/manifest.h"

namespace zm::test {
namespace {

namespace v1 = zeromesh::v1;

manifest::Result Decode(const std::string& http) {
  manifest::Result r;
  manifest::DecodeText(
      "apiVersion: zeromesh.io/v1alpha1\nkind: TrafficPermission\nmetadata: {name: p, namespace: shop}\n"
      "spec:\n  action: ALLOW\n  sources: {namespaces: [shop]}\n" +
          http,
      "m.yaml", manifest::Limits{}, &r);
  return r;
}

void ExpectError(const std::string& http, int line, const std::string& needle) {
  auto r = Decode(http);
  std::string all;
  for (const auto& e : r.errors) all += std::to_string(e.line) + ": " + e.reason + "\n";
  ASSERT_EQ(r.errors.size(), 1u) << http << "\n" << all;
  EXPECT_EQ(r.errors[0].line, line) << all;
  EXPECT_NE(r.errors[0].reason.find(needle), std::string::npos) << all;
  EXPECT_TRUE(r.resources.empty());
}

TEST(PermissionHttpDecode, AcceptsMethodsPathsAndHeaders) {
  auto r = Decode(
      "  http:\n"
      "  - methods: [GET, HEAD]\n"
      "    paths: [\"/api/*\", /health, \"*.css\", \"*\"]\n"
      "  - headers:\n"
      "    - {name: X-Debug, value: \"1\"}\n"
      "    - {name: x-user, prefix: admin-}\n"
      "    - {name: x-token, present: true}\n");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].reason;
  ASSERT_EQ(r.resources.size(), 1u);
  const auto& tp = r.resources[0].resource->traffic_permission();
  ASSERT_EQ(tp.http_size(), 2);
  EXPECT_EQ(tp.http(0).methods_size(), 2);
  EXPECT_EQ(tp.http(0).paths(0), "/api/*");
  EXPECT_EQ(tp.http(0).paths(3), "*");
  ASSERT_EQ(tp.http(1).headers_size(), 3);
  EXPECT_EQ(tp.http(1).headers(0).name(), "x-debug");  // names are case-insensitive: kept lower case
  EXPECT_EQ(tp.http(1).headers(0).type(), v1::MATCH_EXACT);
  EXPECT_EQ(tp.http(1).headers(0).value(), "1");
  EXPECT_EQ(tp.http(1).headers(1).type(), v1::MATCH_PREFIX);
  EXPECT_EQ(tp.http(1).headers(1).value(), "admin-");
  EXPECT_EQ(tp.http(1).headers(2).type(), v1::MATCH_PREFIX);
  EXPECT_EQ(tp.http(1).headers(2).value(), "");
}

TEST(PermissionHttpDecode, WithoutHttpStaysL4) {
  auto r = Decode("");
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.resources[0].resource->traffic_permission().http_size(), 0);
}

TEST(PermissionHttpDecode, RefusesBadInput) {
  ExpectError("  http:\n  - methods: [get]\n", 8,
              "'spec.http[0].methods[0]': 'get' is not an HTTP method: methods "
              "are case-sensitive");
  ExpectError("  http:\n  - methods: [\"GE T\"]\n", 8, "'GE T' is not an HTTP method");
  ExpectError("  http:\n  - methods: [GET, GET]\n", 8, "'GET' is listed twice");
  ExpectError("  http:\n  - paths: [\"\"]\n", 8, "'spec.http[0].paths[0]': a path must not be empty");
  ExpectError("  http:\n  - paths: [api/*]\n", 8, "must start with '/'");
  ExpectError("  http:\n  - paths: [\"/a*b\"]\n", 8, "'*' may only stand at the start");
  ExpectError("  http:\n  - paths: [\"/a?x=1\"]\n", 8, "without spaces, '?' or '#'");
  ExpectError("  http:\n  - paths: /a\n", 8, "'spec.http[0].paths' must be a list");
  ExpectError("  http:\n  - method: [GET]\n", 8,
              "unknown field 'spec.http[0].method' (allowed: methods, paths, "
              "headers)");
  ExpectError("  http:\n  - {}\n", 8, "'spec.http[0]' names no methods, paths or headers");
  ExpectError("  http: []\n", 7, "'spec.http' must be a non-empty list");
  ExpectError("  http:\n  - headers: [{name: x-a}]\n", 8, "needs exactly one of value (exact), prefix or present");
  ExpectError("  http:\n  - headers: [{name: x-a, value: b, prefix: c}]\n", 8, "needs exactly one of");
  ExpectError("  http:\n  - headers: [{name: x-a, present: false}]\n", 8,
              "'spec.http[0].headers[0].present' can "
              "only be true");
  ExpectError("  http:\n  - headers: [{name: \"x a\", value: b}]\n", 8, "is not an HTTP header name");
  ExpectError("  http:\n  - headers: [{name: x-a, exact: b}]\n", 8, "unknown field 'spec.http[0].headers[0].exact'");
  ExpectError("  http:\n  - headers: [{name: x-a, prefix: \"\"}]\n", 8, "use present: true");
}

}  // namespace
}  // namespace zm::test
