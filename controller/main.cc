// mesh-controller: CA + config streaming for zeromesh agents (universal mode: a directory of YAML manifests).
#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "common/log.h"
#include "controller/controller.h"
#include "controller/flags.h"

int main(int argc, char** argv) {
  zm::log::SetComponent("controller");
  zm::ctrl::ParsedFlags flags;
  std::string error;
  if (!zm::ctrl::ParseFlags(argc, argv, &flags, &error)) {
    std::fprintf(stderr, "mesh-controller: %s\n%s", error.c_str(), zm::ctrl::Usage());
    return 2;
  }
  if (flags.help) {
    std::fputs(zm::ctrl::Usage(), stdout);
    return 0;
  }
  zm::log::SetMinLevel(zm::log::ParseLevel(flags.log_level));

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto controller = zm::ctrl::Controller::Create(flags.options, &error);
  if (!controller || !controller->Start(&error)) {
    zm::log::Error("mesh-controller failed to start", {{"error", error}});
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  zm::log::Info("shutting down", {{"signal", sig}});
  controller->Shutdown();
  return 0;
}
