#include "controller/flags.h"

#include <map>

#include "controller/manifest/yaml_reader.h"

namespace zm::ctrl {

const char* Usage() {
  return "usage: mesh-controller --manifests DIR --join-tokens FILE (--ca-dir DIR | --ca-cert FILE --ca-key FILE "
         "[--ca-bundle FILE])\n"
         "                       [--listen ADDR:PORT] [--max-cert-ttl 24h] [--server-name NAME]... [--no-watch]\n"
         "                       [--log-level debug|info|warn|error]\n";
}

bool ParseFlags(int argc, char** argv, ParsedFlags* out, std::string* error) {
  Options& o = out->options;
  std::map<std::string, std::string*> str = {{"--manifests", &o.manifests_dir}, {"--listen", &o.listen},
                                             {"--ca-dir", &o.ca_dir},           {"--ca-cert", &o.ca_cert},
                                             {"--ca-key", &o.ca_key},           {"--ca-bundle", &o.ca_bundle},
                                             {"--join-tokens", &o.join_tokens}, {"--log-level", &out->log_level}};
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
    } else if (name == "--server-name") {
      o.extra_server_names.push_back(value);
    } else {
      *str[name] = value;
    }
  }
  return true;
}

}  // namespace zm::ctrl
