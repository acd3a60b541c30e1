// The agent bootstrap file: join token or projected ServiceAccount token file (re-read for every call), node optional.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/control/bootstrap.h"

namespace zm::agent::control {
namespace {

class BootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("zm-bootstrap-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    Write("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  std::string Path() const { return (dir_ / "boot.json").string(); }
  std::filesystem::path dir_;
};

TEST_F(BootstrapTest, TokenFileIsReadForEveryCall) {
  std::string token = Write("token", "first-token\n");
  Bootstrap b;
  std::string err;
  ASSERT_TRUE(ParseBootstrap(
      R"({"controller":"ipv4:10.0.0.1:15012,10.0.0.2:15012","tokenFile":")" + token + R"(","caCert":"ca.pem"})", Path(),
      &b, &err))
      << err;
  EXPECT_TRUE(b.node.empty());  // the agent's --node applies
  EXPECT_EQ(CurrentToken(b), "first-token");
  Write("token", "rotated-token");  // the kubelet rotated it
  EXPECT_EQ(CurrentToken(b), "rotated-token");
  std::filesystem::remove(token);
  EXPECT_EQ(CurrentToken(b), "");  // the controller then refuses the call with a clear error
}

TEST_F(BootstrapTest, ExactlyOneCredential) {
  Bootstrap b;
  std::string err;
  EXPECT_FALSE(
      ParseBootstrap(R"({"controller":"c:1","token":"t","tokenFile":"/f","caCert":"ca.pem"})", Path(), &b, &err));
  EXPECT_NE(err.find("exactly one of 'token'"), std::string::npos) << err;
  EXPECT_FALSE(ParseBootstrap(R"({"controller":"c:1","node":"n","caCert":"ca.pem"})", Path(), &b, &err));
  EXPECT_NE(err.find("exactly one of 'token'"), std::string::npos) << err;
  ASSERT_TRUE(ParseBootstrap(R"({"controller":"c:1","node":"n","token":"join","caCert":"ca.pem"})", Path(), &b, &err))
      << err;
  EXPECT_EQ(CurrentToken(b), "join");
}

}  // namespace
}  // namespace zm::agent::control
