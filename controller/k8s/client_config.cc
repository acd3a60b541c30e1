#include "controller/k8s/client_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <vector>

#include "controller/fs_util.h"
#include "controller/k8s/base64.h"

namespace zm::k8s {
namespace {

std::string Str(const YAML::Node& n, const char* key) {
  YAML::Node v = n[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

// "<key>-data" (base64) or "<key>" (a file, relative to the kubeconfig's directory). Empty if neither is set.
bool DataOrFile(const YAML::Node& n, const std::string& key, const std::string& base_dir, std::string* out,
                std::string* error) {
  if (std::string data = Str(n, (key + "-data").c_str()); !data.empty()) {
    auto decoded = Base64Decode(data);
    if (!decoded) {
      *error = "kubeconfig: '" + key + "-data' is not valid base64";
      return false;
    }
    *out = *decoded;
    return true;
  }
  std::string file = Str(n, key.c_str());
  if (file.empty()) return true;
  if (file[0] != '/') file = base_dir + "/" + file;
  std::string err;
  auto text = ctrl::ReadFile(file, &err, 1 << 20);
  if (!text) {
    *error = "kubeconfig: '" + key + "': " + err;
    return false;
  }
  *out = *text;
  return true;
}

YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* inner) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& item : list) {
    if (item.IsMap() && Str(item, "name") == name && item[inner] && item[inner].IsMap()) return item[inner];
  }
  return YAML::Node();
}

}  // namespace

std::string ClientConfig::Describe() const {
  std::string auth = !client_cert_pem.empty() ? "client certificate"
                     : !token_file.empty()    ? "token file " + token_file
                     : !token.empty()         ? "bearer token"
                                              : "anonymous";
  return server + " (auth: " + auth + (insecure ? ", TLS verification off" : "") + ")";
}

std::optional<ClientConfig> InClusterConfig(std::string* error, const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    *error =
        "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set "
        "(use --kubeconfig FILE outside a cluster)";
    return std::nullopt;
  }
  ClientConfig c;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6 literal
  c.server = "https://" + h + ":" + port;
  std::string err;
  auto ca = ctrl::ReadFile(sa_dir + "/ca.crt", &err, 1 << 20);
  if (!ca) {
    *error = "in-cluster CA: " + err;
    return std::nullopt;
  }
  c.ca_pem = *ca;
  c.token_file = sa_dir + "/token";
  if (!ctrl::ReadFile(c.token_file, &err, 64 << 10)) {
    *error = "in-cluster ServiceAccount token: " + err;
    return std::nullopt;
  }
  return c;
}

std::optional<ClientConfig> LoadKubeconfig(const std::string& path, std::string* error, const std::string& context) {
  std::string err;
  auto text = ctrl::ReadFile(path, &err, 4 << 20);
  if (!text) {
    *error = "kubeconfig: " + err;
    return std::nullopt;
  }
  std::string base_dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) base_dir = slash == 0 ? "/" : path.substr(0, slash);
  try {
    YAML::Node root = YAML::Load(*text);
    if (!root.IsMap()) {
      *error = "kubeconfig " + path + ": not a YAML mapping";
      return std::nullopt;
    }
    std::string ctx_name = context.empty() ? Str(root, "current-context") : context;
    YAML::Node ctx;
    if (!context.empty()) {
      ctx = FindNamed(root["contexts"], context, "context");
      if (!ctx.IsMap()) {
        std::string names;
        if (root["contexts"] && root["contexts"].IsSequence()) {
          for (const auto& item : root["contexts"]) names += (names.empty() ? "" : ", ") + Str(item, "name");
        }
        *error = "kubeconfig " + path + ": no context named '" + context +
                 "' (contexts: " + (names.empty() ? "none" : names) + ")";
        return std::nullopt;
      }
    } else if (ctx_name.empty()) {
      YAML::Node contexts = root["contexts"];
      if (contexts && contexts.IsSequence() && contexts.size() == 1 && contexts[0]["context"]) {
        ctx = contexts[0]["context"];
      }
    } else {
      ctx = FindNamed(root["contexts"], ctx_name, "context");
    }
    if (!ctx.IsMap()) {
      *error = "kubeconfig " + path + ": no usable context (current-context '" + ctx_name + "')";
      return std::nullopt;
    }
    YAML::Node cluster = FindNamed(root["clusters"], Str(ctx, "cluster"), "cluster");
    if (!cluster.IsMap()) {
      *error = "kubeconfig " + path + ": context names cluster '" + Str(ctx, "cluster") + "', which is not defined";
      return std::nullopt;
    }
    ClientConfig c;
    c.server = Str(cluster, "server");
    while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
    if (c.server.rfind("https://", 0) != 0 && c.server.rfind("http://", 0) != 0) {
      *error = "kubeconfig " + path + ": cluster server '" + c.server + "' is not an http(s) URL";
      return std::nullopt;
    }
    c.insecure = Str(cluster, "insecure-skip-tls-verify") == "true";
    if (!DataOrFile(cluster, "certificate-authority", base_dir, &c.ca_pem, error)) return std::nullopt;
    std::string user_name = Str(ctx, "user");
    YAML::Node user = FindNamed(root["users"], user_name, "user");
    if (!user_name.empty() && !user.IsMap()) {
      *error = "kubeconfig " + path + ": context names user '" + user_name + "', which is not defined";
      return std::nullopt;
    }
    if (user.IsMap()) {
      if (!DataOrFile(user, "client-certificate", base_dir, &c.client_cert_pem, error)) return std::nullopt;
      if (!DataOrFile(user, "client-key", base_dir, &c.client_key_pem, error)) return std::nullopt;
      if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
        *error =
            "kubeconfig " + path + ": user '" + user_name + "' has a client certificate without a key or vice versa";
        return std::nullopt;
      }
      c.token = Str(user, "token");
      c.token_file = Str(user, "tokenFile");
      if (!c.token_file.empty() && c.token_file[0] != '/') c.token_file = base_dir + "/" + c.token_file;
      if (user["exec"] || user["auth-provider"]) {
        *error = "kubeconfig " + path + ": user '" + user_name +
                 "' uses an exec/auth-provider plugin, which mesh-controller does not run (use a token or certificate)";
        return std::nullopt;
      }
    }
    return c;
  } catch (const YAML::Exception& e) {
    *error = "kubeconfig " + path + ": bad YAML: " + e.msg;
    return std::nullopt;
  }
}

}  // namespace zm::k8s
