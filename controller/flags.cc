#include "controller/flags.h"

#include <cerrno>
#include <cstdlib>
#include <map>

#include "common/http/http_server.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::ctrl {
namespace {

// --leader-elect-* flags that take a value. (--leader-elect itself is a boolean: --leader-elect[=true|false].)
bool IsLeaderFlag(const std::string& name) {
  return name == "--leader-elect-lease-duration" || name == "--leader-elect-renew-deadline" ||
         name == "--leader-elect-retry-period" || name == "--leader-elect-namespace" ||
         name == "--leader-elect-identity" || name == "--leader-elect-lease-name";
}

bool ParseLeaderFlag(const std::string& name, const std::string& value, k8s::LeaderElectionConfig* c,
                     std::string* error) {
  if (name == "--leader-elect-namespace") {
    c->lease_namespace = value;
  } else if (name == "--leader-elect-identity") {
    c->identity = value;
  } else if (name == "--leader-elect-lease-name") {
    c->lease_name = value;
  } else {
    auto d = k8s::ParseLeaderDuration(value);
    if (!d) {
      *error = name + ": '" + value + "' is not a duration (e.g. 15s, 500ms, 1m)";
      return false;
    }
    (name == "--leader-elect-lease-duration"   ? c->lease_duration
     : name == "--leader-elect-renew-deadline" ? c->renew_deadline
                                               : c->retry_period) = *d;
  }
  return true;
}

}  // namespace

const char* Usage() {
  return "usage: mesh-controller (--manifests DIR | --kubernetes | --kubeconfig FILE) [--join-tokens FILE]\n"
         "                       (--ca-dir DIR | --ca-cert FILE --ca-key FILE [--ca-bundle FILE] |\n"
         "                        --ca-secret [NS/]NAME (Kubernetes: a kubernetes.io/tls Secret, created if missing))\n"
         "                       [--listen ADDR] [--max-cert-ttl 24h] [--server-name NAME]... [--no-watch]\n"
         "                       [--max-concurrent-full-pushes N] (default 16; 0: no bound): agents sent a full\n"
         "                       snapshot at once, the others wait their turn (deltas never wait)\n"
         "                       [--serving-cert-dir DIR] (the rotating serving certificate; default a private temp "
         "dir)\n"
         "                       [--trust-bundle-configmap [NS/]NAME] (Kubernetes: publish the trust bundle, key\n"
         "                       root-cert.pem, for agents; they never need the CA Secret)\n"
         "                       (ADDR: IPv4:PORT, [IPv6]:PORT, or [::]:PORT for both families, IPv4 only on a\n"
         "                       node without IPv6)\n"
         "                       [--admin-addr ADDR|off] (default 127.0.0.1:15014: /metrics /healthz /readyz "
         "/debug/config_dump)\n"
         "                       [--metrics-addr ADDR|off] (default 0.0.0.0:15015: /metrics /healthz /readyz)\n"
         "                       [--console-addr ADDR|off] (default off): the web console (docs/ui.md)\n"
         "                       [--operator-addr 127.x.x.x:PORT|off] (default off; the chart: 127.0.0.1:15016):\n"
         "                       Status for meshctl over TLS with no credential, loopback only: reached through\n"
         "                       a pods/portforward that the API server authorized\n"
         "                       [--log-level debug|info|warn|error]\n"
         "  --join-tokens FILE: \"node: {sha256: HEX, expires: RFC3339}\" entries (meshctl join-token create), "
         "re-read\n"
         "  while running: deleting an entry revokes that node within 2 s.\n"
         "  The CA source is re-read while running (files every second, the Secret every 10 s): add a root to the\n"
         "  bundle, switch the signer, remove the old root - no restart (docs/design.md, CA rotation).\n"
         "  Kubernetes mode: leader election through a coordination.k8s.io/v1 Lease; only the leader serves\n"
         "  agents and writes CRD status, a standby keeps its watches warm and is not ready; losing the lease\n"
         "  exits non-zero.\n"
         "  Refused with --manifests (universal mode has no leader election):\n"
         "                       [--leader-elect[=true|false]] (default true in Kubernetes mode)\n"
         "                       [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]\n"
         "                       [--leader-elect-retry-period 2s] (retry < renew deadline, renew deadline + retry <=\n"
         "                       lease duration, the lease duration in whole seconds)\n"
         "                       [--leader-elect-lease-name NAME] (default zeromesh-controller)\n"
         "                       [--leader-elect-namespace NS] (default $POD_NAMESPACE, else the in-cluster\n"
         "                       namespace, else zeromesh-system)\n"
         "                       [--leader-elect-identity ID] (default $POD_NAME or the host name, + _random)\n"
         "  Kubernetes mode: agents may authenticate with a projected ServiceAccount token (TokenReview) instead of a\n"
         "  join token (--join-tokens is then optional):\n"
         "                       [--agent-service-account NS/NAME|none] (default zeromesh-system/zeromesh-agent)\n"
         "                       [--token-audience AUD] (default zeromesh)\n";
}

bool ParseFlags(int argc, char** argv, ParsedFlags* out, std::string* error) {
  Options& o = out->options;
  o.admin_addr = "127.0.0.1:15014";
  o.metrics_addr = "0.0.0.0:15015";
  std::map<std::string, std::string*> str = {{"--manifests", &o.manifests_dir},
                                             {"--listen", &o.listen},
                                             {"--ca-dir", &o.ca_dir},
                                             {"--ca-secret", &o.ca_secret},
                                             {"--ca-cert", &o.ca_cert},
                                             {"--ca-key", &o.ca_key},
                                             {"--ca-bundle", &o.ca_bundle},
                                             {"--serving-cert-dir", &o.serving_cert_dir},
                                             {"--trust-bundle-configmap", &o.trust_bundle_configmap},
                                             {"--join-tokens", &o.join_tokens},
                                             {"--log-level", &out->log_level},
                                             {"--admin-addr", &o.admin_addr},
                                             {"--metrics-addr", &o.metrics_addr},
                                             {"--console-addr", &o.console_addr},
                                             {"--operator-addr", &o.operator_addr},
                                             {"--kubeconfig", &o.kubeconfig},
                                             {"--agent-service-account", &o.agent_service_account},
                                             {"--token-audience", &o.token_audience}};
  bool leader_flags = false;  // an explicit --leader-elect[=true] or --leader-elect-* (refused in universal mode)
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out->help = true;
      continue;
    }
    if (arg == "--no-watch") {
      o.watch = false;
      continue;
    }
    if (arg == "--kubernetes") {  // in-cluster ServiceAccount credentials
      o.kubernetes = true;
      continue;
    }
    if (arg == "--leader-elect" || arg.rfind("--leader-elect=", 0) == 0) {
      std::string v = arg == "--leader-elect" ? "true" : arg.substr(15);
      if (v != "true" && v != "false") {
        *error = "--leader-elect takes =true or =false, not '" + v + "'";
        return false;
      }
      o.leader_elect = v == "true";
      leader_flags |= o.leader_elect;
      continue;
    }
    std::string name = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    bool known = str.count(name) || name == "--max-cert-ttl" || name == "--max-concurrent-full-pushes" ||
                 name == "--server-name" || IsLeaderFlag(name);
    if (!known) {
      *error = "unknown flag '" + name + "'";
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *error = "flag " + name + " needs a value";
        return false;
      }
      value = argv[++i];
    }
    if (value.empty()) {
      *error = "flag " + name + " needs a non-empty value";
      return false;
    }
    if (name == "--max-cert-ttl") {
      auto secs = manifest::ParseDuration(value);
      if (!secs || *secs < 60 || *secs > 30LL * 86400) {
        *error = "--max-cert-ttl: '" + value + "' must be a duration between 1m and 720h (e.g. 24h)";
        return false;
      }
      o.max_cert_ttl_seconds = static_cast<uint32_t>(*secs);
    } else if (name == "--max-concurrent-full-pushes") {
      char* end = nullptr;
      errno = 0;
      long n = std::strtol(value.c_str(), &end, 10);
      if (errno != 0 || *end != '\0' || n < 0 || n > 100000) {
        *error = "--max-concurrent-full-pushes: '" + value + "' must be a whole number from 0 (no bound) to 100000";
        return false;
      }
      o.max_concurrent_full_pushes = static_cast<size_t>(n);
    } else if (name == "--admin-addr" || name == "--metrics-addr" || name == "--console-addr") {
      std::string why;
      if (value != "off" && !http::ValidListenAddr(value, &why)) {
        *error = name + ": " + why;
        return false;
      }
      *str[name] = value == "off" ? "" : value;
    } else if (name == "--operator-addr") {
      // No credential is asked there: only a loopback address keeps it to processes in the pod (port-forwards).
      std::string why;
      if (value != "off" && (!http::ValidListenAddr(value, &why) || value.rfind("127.", 0) != 0)) {
        *error =
            "--operator-addr: want a loopback 127.x.x.x:PORT (it asks for no credential) or off, got \"" + value + "\"";
        return false;
      }
      o.operator_addr = value == "off" ? "" : value;
    } else if (name == "--agent-service-account") {
      o.agent_service_account = value == "none" ? "" : value;
    } else if (IsLeaderFlag(name)) {
      leader_flags = true;
      if (!ParseLeaderFlag(name, value, &o.leader_election, error)) return false;
    } else if (name == "--server-name") {
      o.extra_server_names.push_back(value);
    } else {
      *str[name] = value;
    }
  }
  if (!o.kubeconfig.empty()) o.kubernetes = true;
  if (!o.kubernetes) {
    if (leader_flags) {
      *error =
          "--leader-elect flags need Kubernetes mode (--kubernetes or --kubeconfig): universal mode has no "
          "leader election";
      return false;
    }
    o.leader_elect = false;
  } else if (o.leader_elect) {
    k8s::LeaderElectionConfig check = o.leader_election;  // namespace and identity default later
    if (check.lease_namespace.empty()) check.lease_namespace = "-";
    if (check.identity.empty()) check.identity = "-";
    if (!k8s::ValidateLeaderElection(check, error)) return false;
  }
  return true;
}

}  // namespace zm::ctrl
