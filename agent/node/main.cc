// mesh-agent: the per-node zeromesh agent. Runs in the node's network namespace (hostNetwork in Kubernetes).
//   mesh-agent --node NAME --config FILE [--agent-id ID] [--uplink IF] [--workers N] [--log-level L]
// SIGHUP reloads the config file (a bad file keeps the last good config); SIGTERM/SIGINT stop the agent, leaving the
// pinned BPF objects in place so enrolled pods fail closed until the next agent starts.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "agent/node/node_agent.h"
#include "agent/state/local_config.h"
#include "common/log.h"

namespace {

constexpr const char* kUsage =
    "usage: mesh-agent --node NAME --config FILE [--agent-id ID] [--uplink IFNAME] [--workers N] "
    "[--log-level debug|info|warn|error]\n";

bool ParseFlags(int argc, char** argv, std::map<std::string, std::string>* out, std::string* error) {
  static const char* kKnown[] = {"--node", "--config", "--agent-id", "--uplink", "--workers", "--log-level"};
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    if (auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = "flag " + flag + " needs a value";
      return false;
    }
    bool known = false;
    for (const char* k : kKnown) known = known || flag == k;
    if (!known) {
      *error = "unknown flag " + flag;
      return false;
    }
    (*out)[flag] = value;
  }
  for (const char* required : {"--node", "--config"}) {
    if (!out->count(required)) {
      *error = std::string("missing ") + required;
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  zm::log::SetComponent("agent");
  std::map<std::string, std::string> flags;
  std::string error;
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!ParseFlags(argc, argv, &flags, &error)) {
    std::fprintf(stderr, "mesh-agent: %s\n%s", error.c_str(), kUsage);
    return 2;
  }
  if (flags.count("--log-level")) zm::log::SetMinLevel(zm::log::ParseLevel(flags["--log-level"]));

  zm::agent::NodeAgentOptions opts;
  opts.node = flags["--node"];
  opts.agent_id = flags.count("--agent-id") ? flags["--agent-id"] : opts.node;
  if (flags.count("--uplink")) opts.uplink = flags["--uplink"];
  if (flags.count("--workers")) {
    try {
      opts.workers = std::stoi(flags["--workers"]);
    } catch (const std::exception&) {
      std::fprintf(stderr, "mesh-agent: --workers must be a number, got %s\n", flags["--workers"].c_str());
      return 2;
    }
  }

  // Signals are handled synchronously through a signalfd in the main loop.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts, so all threads inherit it
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  zm::agent::SnapshotHolder snapshots;
  zm::agent::InMemoryCertStore certs;
  zm::agent::LocalConfigSource config(flags["--config"], &snapshots, &certs);
  if (!config.Reload(&error)) {
    zm::log::Error("invalid config", {{"error", error}});
    return 1;
  }
  if (snapshots.Get()->node() != opts.node) {
    zm::log::Error("config is for another node", {{"config_node", snapshots.Get()->node()}, {"node", opts.node}});
    return 1;
  }

  zm::agent::NodeAgent agent(opts, snapshots, certs);
  if (!agent.Start(&error)) {
    zm::log::Error("agent failed to start", {{"error", error}});
    return 1;
  }

  bool announced = false;
  for (;;) {
    pollfd fds[2] = {{agent.link_fd(), POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(fds, 2, announced ? -1 : 100) < 0 && errno != EINTR) {
      zm::log::Error("poll", {{"error", std::strerror(errno)}});
      break;
    }
    if (fds[0].revents & POLLIN) agent.OnLinkEvents();
    if (!announced && agent.links_synced()) {
      announced = true;
      zm::log::Info("agent ready",
                    {{"node", opts.node}, {"agent_id", opts.agent_id}, {"reused_pins", agent.reused_pins()}});
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si{};
      if (read(sfd, &si, sizeof(si)) != sizeof(si)) continue;
      if (si.ssi_signo == SIGHUP) {
        if (config.Reload(&error)) {
          zm::log::Info("config reloaded");
        } else {
          zm::log::Error("config reload rejected, keeping the last good config", {{"error", error}});
        }
        continue;
      }
      zm::log::Info("stopping", {{"signal", strsignal(static_cast<int>(si.ssi_signo))}});
      break;
    }
  }
  agent.Stop();
  return 0;
}
