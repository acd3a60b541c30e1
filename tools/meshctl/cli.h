// meshctl's command line: `meshctl [global flags] COMMAND [flags]`, flags anywhere, "--flag value" or "--flag=value".
// Global: --controller ADDR (env ZEROMESH_CONTROLLER), --token T (env ZEROMESH_TOKEN), --ca-cert FILE (env
// ZEROMESH_CA_CERT), -o/--output table|json|yaml, --timeout 5s, -h/--help. Without a controller address, Kubernetes
// mode: --kubeconfig FILE, --context NAME, -n/--namespace NS (default zeromesh-system).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tools/meshctl/output.h"

namespace zm::meshctl {

struct Command {
  std::string name;
  std::string summary;
  std::string usage;               // the command's own flags and what it prints
  std::vector<std::string> flags;  // command flags that take a value
  bool needs_controller = true;
  std::string args = "";  // positional arguments after the command, for its usage line ("create NODE"); "": none
};

const std::vector<Command>& Commands();
std::string GlobalUsage();
std::string CommandUsage(const Command& c);

struct Invocation {
  const Command* command = nullptr;  // nullptr: no command given
  bool help = false;
  Format format = Format::kTable;
  std::string controller, token, ca_cert;
  std::string kubeconfig, context, kube_namespace = "zeromesh-system";  // Kubernetes mode (no controller address)
  int64_t timeout_seconds = 5;
  std::map<std::string, std::string> flags;  // command flags, without the dashes
  std::vector<std::string> args;             // positional arguments (commands with Command::args only)
};

// false with *error set on a usage error (exit 2). `getenv` is injectable for tests.
bool ParseArgs(const std::vector<std::string>& args, const std::function<const char*(const char*)>& getenv,
               Invocation* out, std::string* error);
// The controller connection flags once a command needs them; false with *error naming what is missing. No controller
// address at all is Kubernetes mode (checked when it runs).
bool CheckConnection(const Invocation& inv, std::string* error);

}  // namespace zm::meshctl
