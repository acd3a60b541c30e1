// The API server half of the uninstall check (the verdicts are listed in uninstall_check.h). It needs libcurl and
// the ~26 libraries libcurl pulls in, so it lives in its own executable, mesh-agent-uninstall-check
// (uninstall_check_main.cc), which the agent runs once on SIGTERM: the agent itself stays free of them (about 3 MB
// less resident per node, for a GET made once in the agent's life).
#pragma once

#include <string>

#include "agent/node/uninstall_check.h"

namespace zm::agent {

// Asks the API server for the agent's DaemonSet: true means uninstall. *reason says what decided (for the log).
bool AskApiServerIfUninstalling(const UninstallCheck& check, std::string* reason);

}  // namespace zm::agent
