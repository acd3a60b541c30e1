// The agent's uninstall check: argument parsing, how the agent reads mesh-agent-uninstall-check's verdict (exit code
// and stdout; anything unexpected keeps the data path), and that the real helper without credentials keeps it too.
// The API answers (404, 401, deletionTimestamp) are exercised end to end by tests/k8s/test_k8s_e2e.py.
#include "agent/node/uninstall_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

namespace zm::agent {
namespace {

TEST(UninstallCheck, ParsesNamespaceAndDaemonSet) {
  UninstallCheck c;
  std::string error;
  ASSERT_TRUE(ParseUninstallCheck("zeromesh-system/zeromesh-agent", "/creds", &c, &error)) << error;
  EXPECT_EQ(c.namespace_name, "zeromesh-system");
  EXPECT_EQ(c.daemonset, "zeromesh-agent");
  EXPECT_EQ(c.credentials_dir, "/creds");
}

TEST(UninstallCheck, RefusesWhatIsNotNamespaceSlashName) {
  for (const char* bad :
       {"", "zeromesh-agent", "/x", "x/", "a/b/c", "Ns/agent", "ns/agent?x=1", "ns/../agent", "ns/-agent"}) {
    UninstallCheck c;
    std::string error;
    EXPECT_FALSE(ParseUninstallCheck(bad, "/creds", &c, &error)) << bad;
    EXPECT_NE(error.find("NAMESPACE/DAEMONSET"), std::string::npos) << error;
  }
}

TEST(UninstallCheck, TheProgramIsBesideTheRunningExecutable) {
  std::string error;
  std::string p = UninstallCheckProgramBesideSelf(&error);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  std::string dir(self, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/') + 1);
  EXPECT_EQ(p, dir + "mesh-agent-uninstall-check") << error;
}

// A stand-in helper: a shell script with the given body, run with the real arguments.
class FakeHelper : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-uninstall-check-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    unlink((dir_ + "/helper").c_str());
    rmdir(dir_.c_str());
  }
  UninstallCheck With(const std::string& body) {
    std::ofstream(dir_ + "/helper") << "#!/bin/sh\n" << body << "\n";
    chmod((dir_ + "/helper").c_str(), 0755);
    return UninstallCheck{"ns", "agent", "/creds", dir_ + "/helper"};
  }
  std::string dir_;
};

TEST_F(FakeHelper, ExitCodeDecidesAndStdoutIsTheReason) {
  std::string reason;
  EXPECT_TRUE(IsUninstalling(With("echo \"asked for $1 with $2\"; exit 3"), &reason));
  EXPECT_EQ(reason, "asked for ns/agent with /creds");
  EXPECT_FALSE(IsUninstalling(With("echo 'DaemonSet ns/agent exists'; exit 0"), &reason));
  EXPECT_EQ(reason, "DaemonSet ns/agent exists");
}

TEST_F(FakeHelper, AnythingUnexpectedKeepsTheDataPath) {
  std::string reason;
  EXPECT_FALSE(IsUninstalling(With("echo oops; exit 1"), &reason));
  EXPECT_NE(reason.find("exited with 1 (oops): keeping the data path"), std::string::npos) << reason;
  EXPECT_FALSE(IsUninstalling(With("kill -9 $$"), &reason));
  EXPECT_NE(reason.find("killed by signal 9"), std::string::npos) << reason;
  UninstallCheck missing{"ns", "agent", "/creds", dir_ + "/missing"};
  EXPECT_FALSE(IsUninstalling(missing, &reason));
  EXPECT_NE(reason.find("cannot run"), std::string::npos) << reason;
}

TEST_F(FakeHelper, AHungHelperIsKilledAtTheDeadline) {
  UninstallCheck c = With("echo started; exec sleep 30");
  c.timeout_ms = 300;
  std::string reason;
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(IsUninstalling(c, &reason));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(reason.find("gave no answer within 300 ms: keeping the data path"), std::string::npos) << reason;
}

TEST(UninstallCheck, WithoutCredentialsTheHelperKeepsTheDataPath) {
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "1", 1);
  UninstallCheck c{"ns", "agent", "/nonexistent/credentials", ZM_UNINSTALL_CHECK_PROGRAM};
  std::string reason;
  EXPECT_FALSE(IsUninstalling(c, &reason));
  EXPECT_NE(reason.find("cannot ask the API server"), std::string::npos) << reason;
  EXPECT_NE(reason.find("keeping the data path"), std::string::npos) << reason;
}

}  // namespace
}  // namespace zm::agent
