#include "tools/meshctl/cli.h"

#include <algorithm>

#include "tools/meshctl/join_token.h"
#include "tools/meshctl/output.h"

namespace zm::meshctl {

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"status",
       "mesh health: controller, agents, eBPF, certificates, and what to fix",
       "  --cert-warn DURATION   certificates expiring sooner are problems (default 1h)\n"
       "  --stale DURATION       an agent silent this long is a problem (default 45s)\n"
       "exit status: 0 healthy, 1 problems found (each with a fix hint), 2 usage error\n",
       {"cert-warn", "stale"}},
      {"check",
       "preflight of this node: kernel, BTF, cgroups, bpffs, tcx, capabilities, conflicts",
       "Run it on the node (in its network namespace) as root; it does not contact the controller.\n"
       "exit status: 0 all checks passed, 1 a check failed, 2 usage error\n",
       {},
       false},
      {"workloads", "workloads the controller knows, with node, IP, identity and enrollment", "", {}},
      {"services", "services: VIP, ports with their L7 protocol, endpoints, attached routes", "", {}},
      {"routes", "TCP/HTTP/GRPC routes: matches and weighted backends (-o yaml: all)", "", {}},
      {"stat",
       "requests, success rate, RPS and p50/p99 latency per Service and route",
       "  SERVICE                only this Service (ns/name)\n"
       "Rows are per destination Service (the route backend a request went to) and route rule.\n"
       "  --reporter SIDE        source (default: the client's proxy, which picks the route) or destination\n"
       "HTTP and gRPC Service ports only (TCP ports have no requests). REQUESTS and SUCCESS count since the\n"
       "agents started (a failure: a 5xx response, none, or a gRPC status other than OK); RPS and latency\n"
       "cover each agent's last status report interval (their --status-interval-ms, default 10s), summed\n"
       "over agents.\n",
       {"reporter"},
       true,
       "[SERVICE]"},
      {"policies", "effective TrafficPermission rules per workload (DENY, then ALLOW, then the default)", "", {}},
      {"certs",
       "workload certificates the agents hold and when they expire",
       "  --cert-warn DURATION   mark certificates expiring sooner (default 1h); exit 1 if any\n",
       {"cert-warn"}},
      {"config-dump",
       "what the controller streams to one node, and that node's stream state",
       "  --node NAME            the node (required)\n"
       "Prints JSON unless -o yaml.\n",
       {"node"}},
      {"join-token",
       "create a node's join token (universal mode) and its hashed entry for the controller",
       "  --ttl DURATION         the token expires this long from now (default 2160h = 90d), or\n"
       "                         'never'; meshctl status warns 30 days before expiry\n"
       "Prints the token (for that node's agent bootstrap only) and the line to add to the controller's\n"
       "join-token file, which keeps only its SHA-256; -o json|yaml print {node, token, sha256, expires}.\n"
       "Offline: the controller re-reads its file, so a new or removed entry applies within a second.\n",
       {"ttl"},
       false,
       "create NODE"},
  };
  return kCommands;
}

std::string GlobalUsage() {
  std::string out =
      "meshctl: inspect and troubleshoot a zeromesh mesh\n\n"
      "usage: meshctl [flags] COMMAND [command flags]\n\ncommands:\n";
  for (const auto& c : Commands()) {
    std::string name = "  " + c.name;
    name.resize(16, ' ');
    out += name + c.summary + "\n";
  }
  out +=
      "\nflags (every command):\n"
      "Kubernetes (the default: no controller address given): meshctl asks the API server of your\n"
      "kubeconfig where the controller runs and reaches it with a port-forward, as you (RBAC in its\n"
      "namespace: list pods, get leases and configmaps, get+create pods/portforward); no token or CA file.\n"
      "  --kubeconfig FILE       default: $KUBECONFIG (its first file), then ~/.kube/config\n"
      "  --context NAME          a kubeconfig context other than the current one\n"
      "  -n, --namespace NS      where the chart is installed (default zeromesh-system)\n"
      "Universal mode (or any controller you can reach directly):\n"
      "  --controller HOST:PORT  mesh-controller address (env ZEROMESH_CONTROLLER)\n"
      "  --token TOKEN           a join token (env ZEROMESH_TOKEN)\n"
      "  --ca-cert FILE          the mesh root certificate (env ZEROMESH_CA_CERT; in Kubernetes mode it\n"
      "                          replaces the trust-bundle ConfigMap)\n"
      "Output:\n"
      "  -o, --output FORMAT     table (default), json or yaml\n"
      "  --timeout DURATION      per request (default 5s)\n"
      "  -h, --help              help; 'meshctl COMMAND --help' for a command\n"
      "\nexit status: 0 ok, 1 problems found or request failed, 2 usage error\n";
  return out;
}

std::string CommandUsage(const Command& c) {
  std::string out = Wrap("meshctl " + c.name + ": " + c.summary, kMaxWidth, 2) + "\n\nusage: meshctl " + c.name +
                    (c.args.empty() ? "" : " " + c.args) + " [flags]\n";
  if (!c.usage.empty()) out += "\n" + c.usage;
  out +=
      "\nglobal flags: --controller, --token, --ca-cert (universal); --kubeconfig, --context, -n/--namespace\n"
      "(Kubernetes); -o/--output, --timeout (see meshctl --help)\n";
  return out;
}

namespace {

bool CheckJoinTokenArgs(const Invocation& inv, std::string* error) {
  if (inv.args.empty() || inv.args[0] != "create") {
    *error = inv.args.empty() ? "join-token needs a subcommand: meshctl join-token create NODE"
                              : "join-token: unknown subcommand '" + inv.args[0] + "' (expected create)";
    return false;
  }
  if (inv.args.size() != 2) {
    *error = "join-token create takes exactly one NODE";
    return false;
  }
  if (!ValidNodeName(inv.args[1], error)) return false;
  int64_t ttl = 0;
  if (auto it = inv.flags.find("ttl");
      it != inv.flags.end() && it->second != "never" && (!ParseDuration(it->second, &ttl) || ttl <= 0)) {
    *error = "--ttl: '" + it->second + "' is not a positive duration (e.g. 720h, 90d) or 'never'";
    return false;
  }
  return true;
}

bool CheckStatArgs(const Invocation& inv, std::string* error) {
  if (inv.args.size() > 1) {
    *error = "stat takes at most one SERVICE (ns/name)";
    return false;
  }
  if (!inv.args.empty() && inv.args[0].find('/') == std::string::npos) {
    *error = "stat: SERVICE '" + inv.args[0] + "' is not ns/name";
    return false;
  }
  if (auto it = inv.flags.find("reporter");
      it != inv.flags.end() && it->second != "source" && it->second != "destination") {
    *error = "--reporter: '" + it->second + "' is not source or destination";
    return false;
  }
  return true;
}

}  // namespace

bool ParseArgs(const std::vector<std::string>& args, const std::function<const char*(const char*)>& getenv,
               Invocation* out, std::string* error) {
  auto env = [&](const char* name) {
    const char* v = getenv(name);
    return std::string(v ? v : "");
  };
  out->controller = env("ZEROMESH_CONTROLLER");
  out->token = env("ZEROMESH_TOKEN");
  out->ca_cert = env("ZEROMESH_CA_CERT");
  std::string output = "table", timeout;
  std::map<std::string, std::string*> global = {{"controller", &out->controller},
                                                {"token", &out->token},
                                                {"ca-cert", &out->ca_cert},
                                                {"kubeconfig", &out->kubeconfig},
                                                {"context", &out->context},
                                                {"namespace", &out->kube_namespace},
                                                {"output", &output},
                                                {"timeout", &timeout}};
  std::vector<std::pair<std::string, std::string>> cmd_flags;
  for (size_t i = 0; i < args.size(); i++) {
    std::string a = args[i];
    if (a == "-h" || a == "--help" || a == "help") {
      out->help = true;
      continue;
    }
    if (a == "-o") a = "--output";
    if (a == "-n") a = "--namespace";
    if (a.rfind("-o", 0) == 0 && a.size() > 2 && a[2] != '-') a = "--output=" + a.substr(2);  // -ojson
    if (a.rfind("--", 0) != 0) {
      if (a.rfind("-", 0) == 0) {
        *error = "unknown flag '" + a + "'";
        return false;
      }
      if (out->command && !out->command->args.empty()) {
        out->args.push_back(a);
        continue;
      }
      if (out->command) {
        *error = "unexpected argument '" + a + "'";
        return false;
      }
      auto it = std::find_if(Commands().begin(), Commands().end(), [&](const Command& c) { return c.name == a; });
      if (it == Commands().end()) {
        *error = "unknown command '" + a + "'";
        return false;
      }
      out->command = &*it;
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        *error = "flag --" + name + " needs a value";
        return false;
      }
      value = args[++i];
    }
    if (global.count(name)) {
      *global[name] = value;
    } else {
      cmd_flags.push_back({name, value});
    }
  }
  if (out->help) return true;
  if (!out->command) {
    *error = "no command given";
    return false;
  }
  for (const auto& [name, value] : cmd_flags) {
    const auto& allowed = out->command->flags;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      *error = "unknown flag '--" + name + "' for '" + out->command->name + "'";
      return false;
    }
    if (value.empty()) {
      *error = "flag --" + name + " needs a non-empty value";
      return false;
    }
    out->flags[name] = value;
  }
  if (output == "json") {
    out->format = Format::kJson;
  } else if (output == "yaml") {
    out->format = Format::kYaml;
  } else if (output == "table" || output == "wide") {
    out->format = Format::kTable;
  } else {
    *error = "-o/--output: '" + output + "' is not one of table, json, yaml";
    return false;
  }
  if (!timeout.empty() && (!ParseDuration(timeout, &out->timeout_seconds) || out->timeout_seconds <= 0)) {
    *error = "--timeout: '" + timeout + "' is not a duration (e.g. 5s)";
    return false;
  }
  for (const char* d : {"cert-warn", "stale"}) {
    int64_t secs = 0;
    if (out->flags.count(d) && !ParseDuration(out->flags[d], &secs)) {
      *error = std::string("--") + d + ": '" + out->flags[d] + "' is not a duration (e.g. 90s, 5m, 1h)";
      return false;
    }
  }
  if (out->command->name == "config-dump" && !out->flags.count("node")) {
    *error = "config-dump needs --node NAME";
    return false;
  }
  if (out->command->name == "join-token") return CheckJoinTokenArgs(*out, error);
  if (out->command->name == "stat") return CheckStatArgs(*out, error);
  return true;
}

bool CheckConnection(const Invocation& inv, std::string* error) {
  if (inv.controller.empty()) {
    if (!inv.kube_namespace.empty()) return true;  // Kubernetes mode: the kubeconfig says where the controller is
    *error = "-n/--namespace needs a non-empty value";
  } else if (inv.token.empty()) {
    *error = "no token: give --token or set ZEROMESH_TOKEN (an entry of the controller's join-token file)";
  } else if (inv.ca_cert.empty()) {
    *error = "no CA: give --ca-cert FILE or set ZEROMESH_CA_CERT (the mesh root, root-cert.pem in the CA dir)";
  } else {
    return true;
  }
  return false;
}

}  // namespace zm::meshctl
