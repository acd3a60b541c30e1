// meshctl: the zeromesh command-line tool (status, preflight checks, resource views). See cli.h for the flags.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tools/meshctl/cli.h"
#include "tools/meshctl/commands.h"

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  zm::meshctl::Invocation inv;
  std::string error;
  bool parsed = zm::meshctl::ParseArgs(
      args, [](const char* n) { return std::getenv(n); }, &inv, &error);
  if (parsed && inv.help) {
    std::fputs(inv.command ? zm::meshctl::CommandUsage(*inv.command).c_str() : zm::meshctl::GlobalUsage().c_str(),
               stdout);
    return zm::meshctl::kExitOk;
  }
  if (parsed && inv.command->needs_controller) parsed = zm::meshctl::CheckConnection(inv, &error);
  if (!parsed) {
    std::string help = inv.command ? "meshctl " + inv.command->name + " --help" : "meshctl --help";
    std::fprintf(stderr, "meshctl: %s\nrun '%s' for usage\n", error.c_str(), help.c_str());
    return zm::meshctl::kExitUsage;
  }
  std::string out, err;
  int code = zm::meshctl::Run(inv, &out, &err);
  std::fputs(out.c_str(), stdout);
  std::fputs(err.c_str(), stderr);
  return code;
}
