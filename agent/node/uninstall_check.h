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
//
// The GET needs libcurl, which the agent does not load: a separate executable, mesh-agent-uninstall-check (installed
// next to mesh-agent), asks (uninstall_query.h) and answers with its exit code, the reason on stdout. Anything but
// its "uninstall" exit code (it is missing, crashed, hung) keeps the data path too.
#pragma once

#include <string>

namespace zm::agent {

struct UninstallCheck {
  std::string namespace_name;  // the DaemonSet's
  std::string daemonset;
  std::string credentials_dir;  // token + ca.crt (the chart's projected volume); the API from KUBERNETES_SERVICE_*
  std::string program;          // mesh-agent-uninstall-check
  int timeout_ms = 15000;       // then the program is killed (its GET has a 5 s timeout)
};

// mesh-agent-uninstall-check's exit codes (2: bad arguments); its stdout is the reason.
constexpr int kUninstallCheckKeep = 0;
constexpr int kUninstallCheckUninstall = 3;

// The helper beside the running executable ("" with *error when /proc/self/exe cannot be read).
std::string UninstallCheckProgramBesideSelf(std::string* error);

// "NAMESPACE/NAME" -> check; false with *error for anything else.
bool ParseUninstallCheck(const std::string& spec, const std::string& credentials_dir, UninstallCheck* out,
                         std::string* error);

// Runs check.program NAMESPACE/DAEMONSET CREDENTIALS_DIR (with the agent's environment: KUBERNETES_SERVICE_*) and
// returns its verdict; *reason says what decided (for the log).
bool IsUninstalling(const UninstallCheck& check, std::string* reason);

}  // namespace zm::agent
