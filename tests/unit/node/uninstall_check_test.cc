// The agent's uninstall check: argument parsing, and that without credentials it keeps the data path (fail closed).
// The API answers (404, 401, deletionTimestamp) are exercised end to end by tests/k8s/test_k8s_e2e.py.
#include "agent/node/uninstall_check.h"

#include <gtest/gtest.h>

#include <cstdlib>

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

TEST(UninstallCheck, WithoutCredentialsKeepsTheDataPath) {
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "1", 1);
  UninstallCheck c{"ns", "agent", "/nonexistent/credentials"};
  std::string reason;
  EXPECT_FALSE(IsUninstalling(c, &reason));
  EXPECT_NE(reason.find("keeping the data path"), std::string::npos) << reason;
}

}  // namespace
}  // namespace zm::agent
