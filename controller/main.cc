// mesh-controller: CA + config streaming for zeromesh agents (universal mode: a directory of YAML manifests).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>

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

  // Block the stop signals in every thread; the main thread waits for them. SIGUSR1 is how the controller's
  // leader-election thread says leadership was lost (or serving failed after winning it): exit non-zero, client-go
  // style, so Kubernetes restarts the pod as a fresh standby.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto controller = zm::ctrl::Controller::Create(flags.options, &error);
  static std::mutex fatal_mu;
  static std::string fatal_reason;
  if (controller) {
    controller->OnFatal([](const std::string& reason) {
      {
        std::lock_guard<std::mutex> lock(fatal_mu);
        if (!fatal_reason.empty()) return;
        fatal_reason = reason;
      }
      kill(getpid(), SIGUSR1);
    });
  }
  if (!controller || !controller->Start(&error)) {
    zm::log::Error("mesh-controller failed to start", {{"error", error}});
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  if (sig == SIGUSR1) {
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(fatal_mu);
      reason = fatal_reason;
    }
    zm::log::Error("leadership lost: exiting", {{"reason", reason}});
    controller->Shutdown();
    return 1;
  }
  zm::log::Info("shutting down", {{"signal", sig}});
  controller->Shutdown();
  return 0;
}
