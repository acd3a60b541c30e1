#include "controller/flags.h"

#include <map>

#include "common/http/http_server.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::ctrl {

const char* Usage() {
  return "usage: mesh-controller (--manifests DIR | --kubernetes | --kubeconfig FILE) --join-tokens FILE\n"
         "                       (--ca-dir DIR | --ca-cert FILE --ca-key FILE [--ca-bundle FILE])\n"
         "                       [--listen ADDR:PORT] [--max-cert-ttl 24h] [--server-name NAME]... [--no-watch]\n"
         "                       [--admin-addr IP:PORT|off] (default 127.0.0.1:15014: /metrics /healthz /readyz "
         "/debug/config_dump)\n"
         "                       [--metrics-addr IP:PORT|off] (default 0.0.0.0:15015: /metrics /healthz /readyz)\n"
         "                       [--log-level debug|info|warn|error]\n";
}

bool ParseFlags(int argc, char** argv, ParsedFlags* out, std::string* error) {
  Options& o = out->options;
  o.admin_addr = "127.0.0.1:15014";
  o.metrics_addr = "0.0.0.0:15015";
  std::map<std::string, std::string*> str = {
      {"--manifests", &o.manifests_dir},   {"--listen", &o.listen},          {"--ca-dir", &o.ca_dir},
      {"--ca-cert", &o.ca_cert},           {"--ca-key", &o.ca_key},          {"--ca-bundle", &o.ca_bundle},
      {"--join-tokens", &o.join_tokens},   {"--log-level", &out->log_level}, {"--admin-addr", &o.admin_addr},
      {"--metrics-addr", &o.metrics_addr}, {"--kubeconfig", &o.kubeconfig}};
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
    std::string name = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    bool known = str.count(name) || name == "--max-cert-ttl" || name == "--server-name";
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
    } else if (name == "--admin-addr" || name == "--metrics-addr") {
      std::string why;
      if (value != "off" && !http::ValidListenAddr(value, &why)) {
        *error = name + ": " + why;
        return false;
      }
      *str[name] = value == "off" ? "" : value;
    } else if (name == "--server-name") {
      o.extra_server_names.push_back(value);
    } else {
      *str[name] = value;
    }
  }
  if (!o.kubeconfig.empty()) o.kubernetes = true;
  return true;
}

}  // namespace zm::ctrl
