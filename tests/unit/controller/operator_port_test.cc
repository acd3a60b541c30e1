// The controller's operator port (--operator-addr): Status.Get/Resources over TLS with the serving certificate and no
// credential (a bearer token changes nothing), Report refused, loopback addresses only; the agents' port still
// authenticates every call.
#include <gtest/gtest.h>

#include "controller/flags.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::test {
namespace {

namespace v1 = zeromesh::v1;

class OperatorPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = NewEnv();
    WriteFile(env_.manifests + "/w.yaml", WorkloadYaml("web", "default", "web", "node1", "10.0.1.5"));
    ctrl::Options o;
    o.manifests_dir = env_.manifests;
    o.listen = "127.0.0.1:0";
    o.operator_addr = "127.0.0.1:0";
    o.ca_dir = env_.dir + "/ca";
    o.join_tokens = env_.dir + "/tokens.yaml";
    std::string error;
    env_.controller = ctrl::Controller::Create(o, &error);
    ASSERT_TRUE(env_.controller && env_.controller->Start(&error)) << error;
    ASSERT_GT(env_.controller->operator_port(), 0);
    ASSERT_NE(env_.controller->operator_port(), env_.controller->port());
  }
  void TearDown() override {
    env_.Stop();
    RemoveTree(env_.dir);
  }
  // What meshctl does: the mesh root, the serving certificate's DNS name, no client certificate.
  std::unique_ptr<v1::Status::Stub> OperatorStub() {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = env_.controller->authority()->trust_bundle_pem();
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("mesh-controller.zeromesh");
    return v1::Status::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(env_.controller->operator_port()), grpc::SslCredentials(ssl), args));
  }
  ControllerEnv env_;
};

TEST_F(OperatorPortTest, ReadsStatusWithoutACredentialAndRefusesReports) {
  auto op = OperatorStub();
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext ctx;
        v1::ResourceSet rs;
        return op->Resources(&ctx, {}, &rs).ok() && rs.version() > 0;
      },
      5000));
  for (const std::string& token : {std::string(), std::string("not-a-valid-token-at-all")}) {
    grpc::ClientContext ctx;
    Auth(&ctx, token);  // a bearer token is ignored here: no second authentication
    v1::MeshStatus ms;
    auto st = op->Get(&ctx, {}, &ms);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(ms.controller().epoch(), env_.controller->store().epoch());
    EXPECT_GT(ms.controller().config_version(), 0u);
  }
  {
    grpc::ClientContext ctx;
    v1::ReportAck ack;
    v1::AgentStatus report;
    report.set_node("node1");
    auto st = op->Report(&ctx, report, &ack);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(env_.controller->agents().List().empty()) << "a report through the operator port was recorded";
  }
  // The agents' port is unchanged: no token, no status.
  auto agents = v1::Status::NewStub(env_.Channel());
  grpc::ClientContext ctx;
  v1::MeshStatus ms;
  EXPECT_EQ(agents->Get(&ctx, {}, &ms).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

bool ParseArgs(std::vector<std::string> args, ctrl::ParsedFlags* out, std::string* error) {
  args.insert(args.begin(), "mesh-controller");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ctrl::ParseFlags(static_cast<int>(argv.size()), argv.data(), out, error);
}

TEST(OperatorPortFlag, LoopbackOnly) {
  ctrl::ParsedFlags f;
  std::string error;
  ASSERT_TRUE(ParseArgs({"--manifests", "/m"}, &f, &error)) << error;
  EXPECT_EQ(f.options.operator_addr, "");  // off unless asked (the chart asks)
  ASSERT_TRUE(ParseArgs({"--operator-addr=127.0.0.1:15016"}, &f, &error)) << error;
  EXPECT_EQ(f.options.operator_addr, "127.0.0.1:15016");
  ASSERT_TRUE(ParseArgs({"--operator-addr", "off"}, &f, &error)) << error;
  EXPECT_EQ(f.options.operator_addr, "");
  for (const char* bad : {"0.0.0.0:15016", "10.0.0.1:15016", "127.0.0.1", "localhost:15016"}) {
    ctrl::ParsedFlags g;
    EXPECT_FALSE(ParseArgs({std::string("--operator-addr=") + bad}, &g, &error)) << bad;
    EXPECT_NE(error.find("loopback"), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace zm::test
