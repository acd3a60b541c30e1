// On SIGTERM the agent must tell a restart from an uninstall. A restart (rolling update, deleted pod, node drain)
// keeps the pinned program, maps and routing: the next agent adopts them and enrolled pods stay fail-closed in
// between. An uninstall must leave nothing behind, so that every pod talks plainly again at once.
//
// The agent's own DaemonSet tells, read with the agent's API token (a projected ServiceAccount token for the API
// server, Role: get on that one DaemonSet):
//   200 and no deletionTimestamp                -> restart
//   200 with deletionTimestamp, or 404          -> uninstall (helm uninstall / kubectl delete deletes it first)
//   401 (its ServiceAccount is gone) or 403     -> uninstall: the chart's ServiceAccount and Role only disappear
//       (its Role or RoleBinding is gone)          with the release, and helm deletes them before the kubelet stops
//                                                  the pods the garbage collector removes
//   anything else (API unreachable, 5xx)        -> restart: when in doubt, keep failing closed
#pragma once

#include <string>

namespace zm::agent {

struct UninstallCheck {
  std::string namespace_name;  // the DaemonSet's
  std::string daemonset;
  std::string credentials_dir;  // token + ca.crt (the chart's projected volume); the API from KUBERNETES_SERVICE_*
};

// "NAMESPACE/NAME" -> check; false with *error for anything else.
bool ParseUninstallCheck(const std::string& spec, const std::string& credentials_dir, UninstallCheck* out,
                         std::string* error);

// Asks the API server; *reason says what decided (for the log).
bool IsUninstalling(const UninstallCheck& check, std::string* reason);

}  // namespace zm::agent
