// TrafficPermission http rules (issue 17): connection decisions that defer to each request on HTTP ports, the request
// decisions themselves, and the safe behaviour on ports that are not HTTP.
#include "policy_fixture.h"

namespace zm::agent::policy::testing {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

class PolicyHttpTest : public PolicyTest {
 protected:
  // shop/backend serves HTTP on 8080 (Service web 80 -> 8080, appProtocol http) and raw TCP on 9000.
  static v1::Resource Web() {
    return ServiceOf("shop", "web", {{"shop/backend", "10.244.1.12"}}, 80, 8080, v1::APP_HTTP);
  }
  static v1::Resource Raw() {
    return ServiceOf("shop", "raw", {{"shop/backend", "10.244.1.12"}}, 9000, 9000, v1::APP_TCP);
  }

  proxy::AuthzDecision Request(const tls::SpiffeId* source, const char* method, const char* path,
                               const Headers& headers = {}, uint16_t port = 8080) const {
    proxy::HttpRequestAttrs http{method, path, &headers};
    proxy::AuthzRequest req{
        .source = source, .source_ip = Ip("10.244.1.11"), .destination = &backend_, .port = port, .http = &http};
    return set_->Evaluate(req);
  }
};

TEST_F(PolicyHttpTest, AllowWithHttpRulesAllowsOnlyMatchingRequests) {
  Use({Mesh(), Web(), Raw(),
       Perm("shop", "public-get", v1::ALLOW)
           .Identity("spiffe://cluster.local/ns/shop/sa/frontend")
           .To({{"app", "backend"}})
           .Http({"GET"}, {"/public/*"})});
  auto conn = Decide(&frontend_id_, "10.244.1.11", backend_, 8080);
  EXPECT_TRUE(conn.allow);
  EXPECT_TRUE(conn.per_request);
  EXPECT_NE(conn.reason.find("HTTP rules apply"), std::string::npos) << conn.reason;

  auto ok = Request(&frontend_id_, "GET", "/public/x");
  EXPECT_TRUE(ok.allow) << ok.reason;
  EXPECT_EQ(ok.policy, "shop/public-get");

  auto post = Request(&frontend_id_, "POST", "/public/x");
  EXPECT_FALSE(post.allow);
  EXPECT_EQ(post.policy, kImplicitDenyPolicy);
  EXPECT_EQ(post.reason,
            "no TrafficPermission allows POST /public/x from spiffe://cluster.local/ns/shop/sa/frontend to "
            "shop/backend:8080");
  EXPECT_FALSE(Request(&frontend_id_, "GET", "/private").allow);
  EXPECT_FALSE(Request(&frontend_id_, "GET", "/public").allow);  // "/public/*" needs the slash (Istio)

  // Another source matches no ALLOW at all: refused at the connection already.
  auto other = Decide(&client_id_, "10.244.2.13", backend_, 8080);
  EXPECT_FALSE(other.allow);
  EXPECT_FALSE(other.per_request);
}

TEST_F(PolicyHttpTest, AllowWithHttpRulesAllowsNothingOnAPortThatIsNotHttp) {
  Use({Mesh(), Web(), Raw(),
       Perm("shop", "public-get", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}).Http({"GET"}, {})});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_, 9000);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.policy, kImplicitDenyPolicy);
  EXPECT_NE(d.reason.find("allows HTTP requests only, and this port is not HTTP"), std::string::npos) << d.reason;
  // A port no Service names is not HTTP either.
  EXPECT_FALSE(Decide(&frontend_id_, "10.244.1.11", backend_, 7000).allow);
}

TEST_F(PolicyHttpTest, DenyWithHttpRulesDeniesOnlyMatchingRequests) {
  Use({Mesh(), Web(), Raw(),
       Perm("shop", "no-debug", v1::DENY).Namespace("shop").To({{"app", "backend"}}).Http({}, {}, {{"x-debug", "1"}})});
  auto conn = Decide(&frontend_id_, "10.244.1.11", backend_, 8080);
  EXPECT_TRUE(conn.allow);
  EXPECT_TRUE(conn.per_request);
  EXPECT_EQ(conn.policy, kMeshDefaultPolicy);
  EXPECT_NE(conn.reason.find("HTTP rules apply per request (TrafficPermission shop/no-debug)"), std::string::npos);

  auto denied = Request(&frontend_id_, "GET", "/x", {{"x-debug", "1"}});
  EXPECT_FALSE(denied.allow);
  EXPECT_EQ(denied.policy, "shop/no-debug");
  EXPECT_EQ(denied.reason, "denied by TrafficPermission shop/no-debug");
  EXPECT_TRUE(Request(&frontend_id_, "GET", "/x", {{"x-debug", "0"}}).allow);
  EXPECT_TRUE(Request(&frontend_id_, "GET", "/x").allow);

  // On the TCP port the DENY cannot look at headers: it denies the whole connection.
  auto raw = Decide(&frontend_id_, "10.244.1.11", backend_, 9000);
  EXPECT_FALSE(raw.allow);
  EXPECT_EQ(raw.policy, "shop/no-debug");
  EXPECT_NE(raw.reason.find("cannot be checked on a port that is not HTTP"), std::string::npos) << raw.reason;
  // Sources the DENY does not name are unaffected, and need no per-request check.
  auto other = Decide(&client_id_, "10.244.2.13", backend_, 8080);
  EXPECT_TRUE(other.allow);
  EXPECT_FALSE(other.per_request);
}

TEST_F(PolicyHttpTest, L4AllowWithAnHttpDenyIsCheckedPerRequest) {
  Use({Mesh(v1::DENY), Web(), Perm("shop", "shop-in", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}),
       Perm("shop", "no-admin", v1::DENY).Namespace("shop").To({{"app", "backend"}}).Http({}, {"/admin/*"})});
  auto conn = Decide(&frontend_id_, "10.244.1.11", backend_, 8080);
  EXPECT_TRUE(conn.allow);
  EXPECT_TRUE(conn.per_request);
  EXPECT_EQ(conn.policy, "shop/shop-in");
  EXPECT_TRUE(Request(&frontend_id_, "GET", "/api").allow);
  auto admin = Request(&frontend_id_, "GET", "/admin/users");
  EXPECT_FALSE(admin.allow);
  EXPECT_EQ(admin.policy, "shop/no-admin");
}

TEST_F(PolicyHttpTest, MeshDefaultDenyWithOnlyAnHttpDenyStaysDenied) {
  Use({Mesh(v1::DENY), Web(),
       Perm("shop", "no-admin", v1::DENY).Namespace("shop").To({{"app", "backend"}}).Http({}, {"/admin/*"})});
  auto conn = Decide(&frontend_id_, "10.244.1.11", backend_, 8080);
  EXPECT_FALSE(conn.allow);
  EXPECT_FALSE(conn.per_request);
}

// Services that disagree on a pod port (HTTP/1.1 and TCP, HTTP/1.1 and gRPC): the destination proxy parses every
// connection to it (sniffing HTTP/2 from HTTP/1.1, refusing bytes that are not HTTP when requests are decided), so the
// http rules decide each request there as on any HTTP port.
TEST_F(PolicyHttpTest, APortServicesDisagreeOnIsCheckedPerRequest) {
  for (v1::AppProtocol other : {v1::APP_TCP, v1::APP_GRPC, v1::APP_HTTP2}) {
    SCOPED_TRACE(v1::AppProtocol_Name(other));
    v1::Resource also = ServiceOf("shop", "web-also", {{"shop/backend", "10.244.1.12"}}, 81, 8080, other);
    Use({Mesh(), Web(), also,
         Perm("shop", "get-only", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}).Http({"GET"}, {})});
    auto conn = Decide(&frontend_id_, "10.244.1.11", backend_, 8080);
    EXPECT_TRUE(conn.allow) << conn.reason;
    EXPECT_TRUE(conn.per_request);
    EXPECT_TRUE(Request(&frontend_id_, "GET", "/x").allow);
    EXPECT_FALSE(Request(&frontend_id_, "POST", "/x").allow);
  }
  // A port every Service calls TCP stays unparsed: the ALLOW with http allows nothing there.
  v1::Resource tcp_too = ServiceOf("shop", "raw-too", {{"shop/backend", "10.244.1.12"}}, 9001, 9000, v1::APP_TCP);
  Use({Mesh(), Web(), Raw(), tcp_too,
       Perm("shop", "get-only", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}).Http({"GET"}, {})});
  EXPECT_FALSE(Decide(&frontend_id_, "10.244.1.11", backend_, 9000).allow);
}

TEST_F(PolicyHttpTest, GrpcAndH2cPortsAreCheckedPerRequest) {
  v1::Resource grpc = ServiceOf("shop", "rpc", {{"shop/backend", "10.244.1.12"}}, 9090, 9090, v1::APP_GRPC);
  v1::Resource h2c = ServiceOf("shop", "h2", {{"shop/backend", "10.244.1.12"}}, 8443, 8443, v1::APP_HTTP2);
  Use({Mesh(), Web(), Raw(), grpc, h2c,
       Perm("shop", "say-hello", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}).Http({"POST"}, {"/hello.*"})});
  for (uint16_t port : {9090, 8443}) {
    auto conn = Decide(&frontend_id_, "10.244.1.11", backend_, port);
    EXPECT_TRUE(conn.allow) << port << ": " << conn.reason;
    EXPECT_TRUE(conn.per_request) << port;
    EXPECT_TRUE(Request(&frontend_id_, "POST", "/hello.Greeter/SayHello", {}, port).allow) << port;
    EXPECT_FALSE(Request(&frontend_id_, "POST", "/admin.Admin/Drop", {}, port).allow) << port;
  }
  EXPECT_FALSE(Decide(&frontend_id_, "10.244.1.11", backend_, 9000).allow);  // TCP stays unparsed
}

TEST_F(PolicyHttpTest, PathMethodAndHeaderForms) {
  Use({Mesh(), Web(),
       Perm("shop", "forms", v1::ALLOW)
           .Namespace("shop")
           .To({{"app", "backend"}})
           .Http({"GET", "HEAD"}, {"/health", "*.css", "/api/*"})
           .Http({"POST"}, {"*"}, {{"x-user^", "admin-"}, {"x-token^", ""}})});
  EXPECT_TRUE(Request(&frontend_id_, "GET", "/health").allow);
  EXPECT_TRUE(Request(&frontend_id_, "HEAD", "/health").allow);
  EXPECT_FALSE(Request(&frontend_id_, "GET", "/health/x").allow);  // exact
  EXPECT_TRUE(Request(&frontend_id_, "GET", "/static/site.css").allow);
  EXPECT_TRUE(Request(&frontend_id_, "GET", "/api/").allow);
  EXPECT_FALSE(Request(&frontend_id_, "get", "/health").allow);  // methods are case-sensitive
  EXPECT_FALSE(Request(&frontend_id_, "DELETE", "/api/x").allow);
  // The second entry: any path, header prefix and presence, all required.
  EXPECT_TRUE(Request(&frontend_id_, "POST", "/anything", {{"x-user", "admin-1"}, {"x-token", ""}}).allow);
  EXPECT_FALSE(Request(&frontend_id_, "POST", "/anything", {{"x-user", "admin-1"}}).allow);
  EXPECT_FALSE(Request(&frontend_id_, "POST", "/anything", {{"x-user", "guest"}, {"x-token", "t"}}).allow);
  EXPECT_FALSE(Request(&frontend_id_, "POST", "", {{"x-user", "admin-1"}, {"x-token", "t"}}).allow);  // no path
}

TEST_F(PolicyHttpTest, L4OnlyWorkloadsNeverGoPerRequest) {
  Use({Mesh(), Web(), Perm("shop", "shop-in", v1::ALLOW).Namespace("shop").To({{"app", "backend"}}),
       Perm("shop", "db-get", v1::ALLOW).Namespace("shop").To({{"app", "db"}}).Http({"GET"}, {})});
  auto d = Decide(&frontend_id_, "10.244.1.11", backend_, 8080);
  EXPECT_TRUE(d.allow);
  EXPECT_FALSE(d.per_request);
  EXPECT_EQ(d.reason, "allowed by TrafficPermission shop/shop-in");
}

TEST_F(PolicyHttpTest, CompileRejectsBadRules) {
  for (const char* bad : {"", "/a*b", "**", "/a/**", "api/*"}) {
    std::string error;
    auto state = StateOf({Mesh(), Perm("shop", "p", v1::ALLOW).Namespace("shop").Http({}, {bad})});
    EXPECT_EQ(PolicySet::Compile(state, &error), nullptr) << bad;
    EXPECT_NE(error.find("shop/p: http[0]: path"), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace zm::agent::policy::testing
