// mesh-agent-uninstall-check NAMESPACE/DAEMONSET CREDENTIALS_DIR: the agent's uninstall check (uninstall_check.h),
// run by mesh-agent on SIGTERM so that libcurl is never loaded into the agent. Asks the API server for the DaemonSet
// (the address from KUBERNETES_SERVICE_HOST/PORT, token + ca.crt from CREDENTIALS_DIR), prints why on stdout and
// exits kUninstallCheckUninstall (3) for an uninstall, kUninstallCheckKeep (0) to keep the data path, 2 for bad
// arguments.
#include <cstdio>
#include <string>

#include "agent/node/uninstall_check.h"
#include "agent/node/uninstall_query.h"

int main(int argc, char** argv) {
  zm::agent::UninstallCheck check;
  std::string error;
  if (argc != 3 || argv[2][0] == '\0') {
    std::fputs("usage: mesh-agent-uninstall-check NAMESPACE/DAEMONSET CREDENTIALS_DIR (run by mesh-agent on SIGTERM)\n",
               stderr);
    return 2;
  }
  if (!zm::agent::ParseUninstallCheck(argv[1], argv[2], &check, &error)) {
    std::fprintf(stderr, "mesh-agent-uninstall-check: %s\n", error.c_str());
    return 2;
  }
  std::string reason;
  bool uninstall = zm::agent::AskApiServerIfUninstalling(check, &reason);
  std::printf("%s\n", reason.c_str());
  return uninstall ? zm::agent::kUninstallCheckUninstall : zm::agent::kUninstallCheckKeep;
}
