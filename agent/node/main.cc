// mesh-agent: the per-node zeromesh agent. Runs in the node's network namespace (hostNetwork in Kubernetes).
//   mesh-agent --node NAME (--bootstrap FILE | --config FILE) [--agent-id ID] [--uplink IF] [--workers N] [--log-level
//   L]
//              [--health-addr ADDR|off] [--metrics-addr ADDR|off] [--admin-addr ADDR|off]
//              [--access-log on|off] [--access-log-sample R] [--otlp-endpoint HOST:PORT]
//              [--otlp-insecure true|false] [--otlp-ca-file PATH] [--otlp-server-name NAME]
//              [--hbone-handshake-timeout-ms N] [--hbone-header-timeout-ms N] [--hbone-max-connections-per-peer N]
//              [--max-held-connections N] [--attach-mode auto|tcx|tc] [--tc-priority N] [--status-interval-ms N]
// --bootstrap: configuration and certificates come from the controller; --config: from a local JSON file, which
// SIGHUP reloads (a bad file keeps the last good config); SIGTERM/SIGINT stop the agent, leaving the
// pinned BPF objects in place so enrolled pods fail closed until the next agent starts, unless
// --uninstall-check NAMESPACE/DAEMONSET finds the agent's DaemonSet gone (agent/node/uninstall_check.h): then the
// program, pins and routing are removed so every pod talks plainly again.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "agent/node/config_source.h"
#include "agent/node/node_agent.h"
#include "agent/node/observability.h"
#include "agent/node/uninstall_check.h"
#include "agent/policy/policy_holder.h"
#include "common/http/http_server.h"
#include "common/log.h"

namespace {

constexpr const char* kUsage =
    "usage: mesh-agent --node NAME (--bootstrap FILE | --config FILE) [--agent-id ID] [--uplink IFNAME] [--workers N] "
    "[--log-level debug|info|warn|error]\n"
    "                  (--uplink: default none, the uplinks are found from the routing table)\n"
    "                  (ADDR below: IPv4:PORT, [IPv6]:PORT, or [::]:PORT for both families, IPv4 only on a node "
    "without IPv6)\n"
    "                  [--health-addr ADDR|off] (default 0.0.0.0:15021: /healthz /readyz, for the kubelet's "
    "probes)\n"
    "                  [--metrics-addr ADDR|off] (default 0.0.0.0:15020: /metrics /healthz /readyz)\n"
    "                  [--drain-seconds N] (on SIGTERM: stop taking connections, serve the open ones N s; default 0)\n"
    "                  [--cri-socket PATH] (the node's CRI socket: new pods outside the mesh go direct at once)\n"
    "                  [--uninstall-check NAMESPACE/DAEMONSET] [--api-credentials DIR] (default "
    "/var/run/secrets/zeromesh/api: token + ca.crt)\n"
    "                  [--admin-addr ADDR|off] (default 127.0.0.1:15000: the same + /debug/config_dump "
    "/debug/certs)\n"
    "                  [--access-log on|off] [--access-log-sample 0..1] (JSON lines on stdout; default on, 1)\n"
    "                  [--otlp-endpoint HOST:PORT] (OTLP/gRPC receiver of the proxies' request spans, sampled at "
    "MeshConfig's tracing.samplingPercentage; default none: no spans, traceparent passed through)\n"
    "                  [--otlp-insecure true|false] (true: plaintext to the OTLP receiver; default false: TLS)\n"
    "                  [--otlp-ca-file PATH] (TLS: PEM bundle the receiver's certificate must chain to, re-read when "
    "it changes; default the system roots)\n"
    "                  [--otlp-server-name NAME] (TLS: the name the receiver's certificate must carry; default the "
    "endpoint's host)\n"
    "                  [--hbone-handshake-timeout-ms N] (inbound HBONE: TLS handshake deadline; default 5000)\n"
    "                  [--hbone-header-timeout-ms N] (inbound HBONE: first CONNECT after the handshake; default "
    "10000)\n"
    "                  [--hbone-max-connections-per-peer N] (inbound HBONE connections per source address; default "
    "512, 0: no limit)\n"
    "                  [--max-held-connections N] (per proxy worker: connections held until their pod is known or "
    "its certificate issued; default 4096, 0: no limit)\n"
    "                  [--attach-mode auto|tcx|tc] (tcx links, or tc filters on clsact for kernels before 6.6; "
    "default auto: tcx where the kernel has it)\n"
    "                  [--tc-priority N] (tc mode: our filters' priority, 1..65535; default 1 = before others)\n"
    "                  [--sockmap off|on|from-pod|both] (node-local legs by sk_msg redirection instead of TCP; default "
    "off) [--sockops-cgroup PATH|auto] (cgroup v2 directory holding the pods, not the root; required unless off; auto: "
    "the kubelet's pod cgroup, or no redirection with a warning when there is none)\n"
    "                  [--status-interval-ms N] (--bootstrap: status and traffic reports to the controller every N ms, "
    "100..600000; default 10000)\n";

bool ParseFlags(int argc, char** argv, std::map<std::string, std::string>* out, std::string* error) {
  static const char* kKnown[] = {"--bootstrap",
                                 "--node",
                                 "--config",
                                 "--agent-id",
                                 "--uplink",
                                 "--workers",
                                 "--log-level",
                                 "--health-addr",
                                 "--metrics-addr",
                                 "--admin-addr",
                                 "--access-log",
                                 "--access-log-sample",
                                 "--otlp-endpoint",
                                 "--otlp-insecure",
                                 "--otlp-ca-file",
                                 "--otlp-server-name",
                                 "--uninstall-check",
                                 "--api-credentials",
                                 "--cri-socket",
                                 "--drain-seconds",
                                 "--hbone-handshake-timeout-ms",
                                 "--hbone-header-timeout-ms",
                                 "--hbone-max-connections-per-peer",
                                 "--max-held-connections",
                                 "--attach-mode",
                                 "--tc-priority",
                                 "--sockmap",
                                 "--sockops-cgroup",
                                 "--status-interval-ms"};
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
  if (!out->count("--node")) {
    *error = "missing --node";
    return false;
  }
  if (out->count("--config") == out->count("--bootstrap")) {
    *error = "give exactly one of --bootstrap (controller) or --config (local file)";
    return false;
  }
  return true;
}

// --otlp-insecure true|false, --otlp-ca-file PATH, --otlp-server-name NAME: how the OTLP receiver is reached.
bool ParseOtlpTlsFlags(std::map<std::string, std::string>& flags, zm::metrics::TelemetryOptions* out,
                       std::string* error) {
  zm::metrics::OtlpTlsOptions& tls = out->otlp_tls;
  for (const char* flag : {"--otlp-insecure", "--otlp-ca-file", "--otlp-server-name"}) {
    if (flags.count(flag) && out->otlp_endpoint.empty()) {
      *error = std::string(flag) + " needs --otlp-endpoint";
      return false;
    }
  }
  if (flags.count("--otlp-insecure")) {
    const std::string& v = flags["--otlp-insecure"];
    if (v != "true" && v != "false") {
      *error = "--otlp-insecure must be true or false, got " + v;
      return false;
    }
    tls.insecure = v == "true";
  }
  if (flags.count("--otlp-ca-file")) {
    tls.ca_file = flags["--otlp-ca-file"];
    if (tls.ca_file.empty()) {
      *error = "--otlp-ca-file must be a path to a PEM CA bundle";
      return false;
    }
  }
  if (flags.count("--otlp-server-name")) {
    tls.server_name = flags["--otlp-server-name"];
    if (tls.server_name.empty() || tls.server_name.size() > 253 ||
        tls.server_name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
            std::string::npos) {
      *error = "--otlp-server-name must be a DNS name (letters, digits, '.', '-'), got " + tls.server_name;
      return false;
    }
  }
  if (!zm::metrics::ValidOtlpTls(tls, error)) {
    *error = "--otlp-insecure true: " + *error;
    return false;
  }
  return true;
}

// --health-addr / --metrics-addr / --admin-addr ("off" disables), --access-log on|off, --access-log-sample 0..1.
bool ParseObservabilityFlags(std::map<std::string, std::string>& flags, zm::agent::ObservabilityOptions* out,
                             std::string* error) {
  for (auto [flag, addr] :
       {std::pair{"--health-addr", &out->admin.health_addr}, std::pair{"--metrics-addr", &out->admin.metrics_addr},
        std::pair{"--admin-addr", &out->admin.admin_addr}}) {
    if (!flags.count(flag)) continue;
    *addr = flags[flag] == "off" ? "" : flags[flag];
    if (!addr->empty() && !zm::http::ValidListenAddr(*addr, error)) {
      *error = std::string(flag) + ": " + *error;
      return false;
    }
  }
  if (flags.count("--access-log")) {
    const std::string& v = flags["--access-log"];
    if (v != "on" && v != "off") {
      *error = "--access-log must be on or off, got " + v;
      return false;
    }
    out->telemetry.access_log.enabled = v == "on";
  }
  if (flags.count("--access-log-sample")) {
    const std::string& v = flags["--access-log-sample"];
    char* end = nullptr;
    double rate = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(rate >= 0.0 && rate <= 1.0)) {
      *error = "--access-log-sample must be a number in [0, 1], got " + v;
      return false;
    }
    out->telemetry.access_log.sample_rate = rate;
  }
  if (flags.count("--otlp-endpoint")) {
    const std::string& v = flags["--otlp-endpoint"];
    size_t colon = v.rfind(':');
    char* end = nullptr;
    long port = colon == std::string::npos ? 0 : std::strtol(v.c_str() + colon + 1, &end, 10);
    if (colon == 0 || colon == std::string::npos || end == nullptr || *end != '\0' || port < 1 || port > 65535 ||
        v.find_first_of(" /") != std::string::npos) {
      *error =
          "--otlp-endpoint must be HOST:PORT (an OTLP/gRPC receiver, e.g. otel-collector.observability:4317), got " + v;
      return false;
    }
    out->telemetry.otlp_endpoint = v;
  }
  return ParseOtlpTlsFlags(flags, &out->telemetry, error);
}

// The proxy's bounds: --hbone-handshake-timeout-ms, --hbone-header-timeout-ms, --hbone-max-connections-per-peer,
// --max-held-connections (whole numbers; timeouts in [1, 600000] ms, limits in [0, 10000000], 0: no limit).
bool ParseProxyFlags(std::map<std::string, std::string>& flags, zm::proxy::ProxyOptions* out, std::string* error) {
  auto number = [&](const char* flag, unsigned long long lo, unsigned long long hi, auto set) {
    if (!flags.count(flag)) return true;
    const std::string& v = flags[flag];
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || *end != '\0' || errno != 0 || n < lo || n > hi) {
      *error = std::string(flag) + " must be a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
               "], got " + v;
      return false;
    }
    set(n);
    return true;
  };
  return number("--hbone-handshake-timeout-ms", 1, 600000,
                [&](unsigned long long n) { out->handshake_timeout = std::chrono::milliseconds(n); }) &&
         number("--hbone-header-timeout-ms", 1, 600000,
                [&](unsigned long long n) { out->header_timeout = std::chrono::milliseconds(n); }) &&
         number("--hbone-max-connections-per-peer", 0, 10000000,
                [&](unsigned long long n) { out->max_connections_per_peer = static_cast<uint32_t>(n); }) &&
         number("--max-held-connections", 0, 10000000,
                [&](unsigned long long n) { out->max_held_connections = static_cast<size_t>(n); });
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
  if (flags.count("--cri-socket")) opts.cri_socket = flags["--cri-socket"];
  if (flags.count("--workers")) {
    try {
      opts.workers = std::stoi(flags["--workers"]);
    } catch (const std::exception&) {
      std::fprintf(stderr, "mesh-agent: --workers must be a number, got %s\n", flags["--workers"].c_str());
      return 2;
    }
  }

  if (flags.count("--attach-mode")) {
    auto mode = zm::agent::bpf::ParseAttachMode(flags["--attach-mode"]);
    if (!mode) {
      std::fprintf(stderr, "mesh-agent: --attach-mode must be auto, tcx or tc, got %s\n%s",
                   flags["--attach-mode"].c_str(), kUsage);
      return 2;
    }
    opts.attach_mode = *mode;
  }
  if (flags.count("--tc-priority")) {
    const std::string& v = flags["--tc-priority"];
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 1 || n > 65535) {
      std::fprintf(stderr, "mesh-agent: --tc-priority must be a whole number in [1, 65535], got %s\n%s", v.c_str(),
                   kUsage);
      return 2;
    }
    opts.tc_priority = static_cast<uint32_t>(n);
  }
  if (flags.count("--sockmap") && !zm::agent::bpf::ParseSockmapMode(flags["--sockmap"], &opts.sockmap)) {
    std::fprintf(stderr, "mesh-agent: --sockmap must be off, on (= from-pod), from-pod or both, got %s\n%s",
                 flags["--sockmap"].c_str(), kUsage);
    return 2;
  }
  if (flags.count("--sockops-cgroup")) opts.sockops_cgroup = flags["--sockops-cgroup"];
  if (opts.sockmap != zm::agent::bpf::SockmapMode::kOff && opts.sockops_cgroup.empty()) {
    std::fprintf(stderr, "mesh-agent: --sockmap %s needs --sockops-cgroup PATH (or auto)\n%s",
                 zm::agent::bpf::SockmapModeName(opts.sockmap), kUsage);
    return 2;
  }
  if (!ParseProxyFlags(flags, &opts.proxy, &error)) {
    std::fprintf(stderr, "mesh-agent: %s\n%s", error.c_str(), kUsage);
    return 2;
  }

  std::chrono::milliseconds status_interval{10000};
  if (flags.count("--status-interval-ms")) {
    const std::string& v = flags["--status-interval-ms"];
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || n < 100 || n > 600000) {
      std::fprintf(stderr, "mesh-agent: --status-interval-ms must be a whole number in [100, 600000], got %s\n%s",
                   v.c_str(), kUsage);
      return 2;
    }
    status_interval = std::chrono::milliseconds(n);
  }

  int drain_seconds = 0;
  if (flags.count("--drain-seconds")) {
    const std::string& v = flags["--drain-seconds"];
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0 || n > 300) {
      std::fprintf(stderr, "mesh-agent: --drain-seconds must be a whole number of seconds in [0, 300], got %s\n%s",
                   v.c_str(), kUsage);
      return 2;
    }
    drain_seconds = static_cast<int>(n);
  }
  std::optional<zm::agent::UninstallCheck> uninstall_check;
  if (flags.count("--uninstall-check")) {
    zm::agent::UninstallCheck check;
    const std::string creds =
        flags.count("--api-credentials") ? flags["--api-credentials"] : "/var/run/secrets/zeromesh/api";
    if (!zm::agent::ParseUninstallCheck(flags["--uninstall-check"], creds, &check, &error)) {
      std::fprintf(stderr, "mesh-agent: %s\n%s", error.c_str(), kUsage);
      return 2;
    }
    // Checked now, not at SIGTERM: without it an uninstall would leave every enrolled pod failing closed.
    check.program = zm::agent::UninstallCheckProgramBesideSelf(&error);
    if (check.program.empty() || access(check.program.c_str(), X_OK) != 0) {
      const std::string why = check.program.empty() ? error : check.program + ": " + std::strerror(errno);
      std::fprintf(stderr, "mesh-agent: --uninstall-check needs mesh-agent-uninstall-check beside mesh-agent (%s)\n",
                   why.c_str());
      return 2;
    }
    uninstall_check = check;
  }

  zm::agent::ObservabilityOptions obs_opts;
  obs_opts.admin.health_addr = zm::admin::kDefaultHealthAddr;
  if (!ParseObservabilityFlags(flags, &obs_opts, &error)) {
    std::fprintf(stderr, "mesh-agent: %s\n%s", error.c_str(), kUsage);
    return 2;
  }
  obs_opts.telemetry.spans.node = opts.node;
  if (const std::string& ca = obs_opts.telemetry.otlp_tls.ca_file; !ca.empty() && access(ca.c_str(), R_OK) != 0) {
    // Not fatal: a mounted bundle may come later; until then each batch fails (zeromesh_trace_spans_failed_total).
    const std::string why = std::strerror(errno);
    zm::log::Error("OTLP CA file unreadable: every span batch fails until it can be read",
                   {{"path", ca}, {"error", why}});
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
  zm::agent::policy::PolicyHolder policies;
  std::unique_ptr<zm::agent::ConfigSource> config =
      flags.count("--bootstrap") ? zm::agent::MakeControllerSource(flags["--bootstrap"], opts.node, snapshots, certs,
                                                                   policies, status_interval)
                                 : zm::agent::MakeFileSource(flags["--config"], opts.node, snapshots, certs);
  if (flags.count("--bootstrap")) opts.authorize = policies.MakeAuthorizer();
  if (!config->Start(&error)) {
    zm::log::Error("invalid config", {{"error", error}});
    return 1;
  }

  if (config->AppliedVersion()) {  // controller mode: the version and stream state are the controller's
    obs_opts.config_version = [&config] { return config->AppliedVersion().value_or(0); };
    obs_opts.controller_connected = [&config] { return config->Connected().value_or(false); };
  }
  zm::agent::Observability obs(obs_opts);  // before the agent: its telemetry outlives the proxy
  opts.observer = obs.observer();
  opts.proxy.tracing = !obs_opts.telemetry.otlp_endpoint.empty();
  zm::agent::NodeAgent agent(opts, snapshots, certs);
  if (!agent.Start(&error)) {
    zm::log::Error("agent failed to start", {{"error", error}});
    return 1;
  }
  obs.Start(agent, snapshots, certs);

  bool announced = false;
  auto next_tcx_check = std::chrono::steady_clock::now();
  for (;;) {
    pollfd fds[2] = {{agent.link_fd(), POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(fds, 2, announced ? zm::agent::NodeAgent::kTcxCheckMs : 100) < 0 && errno != EINTR) {
      zm::log::Error("poll", {{"error", std::strerror(errno)}});
      break;
    }
    if (fds[0].revents & POLLIN) agent.OnLinkEvents();
    // Other programs come and go in the tcx chains we hook without any event: our position is checked on a timer.
    if (auto now = std::chrono::steady_clock::now(); now >= next_tcx_check) {
      agent.CheckTcxChain();
      next_tcx_check = now + std::chrono::milliseconds(zm::agent::NodeAgent::kTcxCheckMs);
    }
    // Ready once every existing interface is attached and a first configuration is applied.
    if (!announced && agent.links_synced() && config->HasConfig()) {
      announced = true;
      obs.SetLinksSynced();
      config->SetTraffic(&obs.connections());  // obs outlives config->Stop() below
      config->SetRequests(&obs.requests());
      config->SetAgent(&agent);  // status reports describe the agent from now on (and one goes out at once)
      zm::log::Info("agent ready", {{"node", opts.node},
                                    {"agent_id", opts.agent_id},
                                    {"reused_pins", agent.reused_pins()},
                                    {"config_source", config->Describe()}});
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si{};
      if (read(sfd, &si, sizeof(si)) != sizeof(si)) continue;
      if (si.ssi_signo == SIGHUP) {
        config->OnReloadSignal();
        continue;
      }
      zm::log::Info("stopping", {{"signal", strsignal(static_cast<int>(si.ssi_signo))}});
      break;
    }
  }
  // Each step is timed: the next agent cannot start before this one has exited, so a slow step is a longer gap.
  auto since = std::chrono::steady_clock::now();
  auto lap = [&since] {
    auto now = std::chrono::steady_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count();
    since = now;
    return static_cast<int64_t>(ms);
  };
  // The admin endpoints read the agent: they stop first. civetweb takes up to ~2 s to stop (its listener poll), so
  // that runs during the drain rather than after it. A terminating pod's probes and scrapes need no answer.
  std::thread admin_stop([&obs] { obs.StopEndpoints(); });
  if (drain_seconds > 0) {
    // A rolling update: new connections go to the next agent (or wait for it: SYNs are dropped and retransmitted)
    // while the ones already here finish. A second signal ends the drain.
    agent.StopAccepting();
    zm::log::Info("draining", {{"seconds", drain_seconds}});
    pollfd pfd{sfd, POLLIN, 0};
    (void)poll(&pfd, 1, drain_seconds * 1000);
  }
  admin_stop.join();
  obs.Stop();
  int64_t admin_ms = lap();  // the drain, or the admin endpoints' stop when that took longer
  config->SetAgent(nullptr);
  config->SetTraffic(nullptr);
  config->SetRequests(nullptr);
  config->Stop();
  int64_t control_ms = lap();
  agent.Stop();
  zm::log::Info("stopped", {{"admin_ms", admin_ms}, {"control_plane_ms", control_ms}, {"proxy_ms", lap()}});
  if (uninstall_check) {
    std::string reason;
    if (zm::agent::IsUninstalling(*uninstall_check, &reason)) {
      std::string problem;
      bool clean = agent.Uninstall(&problem);
      zm::log::Info("uninstalled: the mesh's program, pins and routing are removed from this node",
                    {{"reason", reason}, {"clean", clean}, {"problem", problem}});
    } else {
      zm::log::Info("restart: the data path stays for the next agent", {{"reason", reason}});
    }
  }
  return 0;
}
