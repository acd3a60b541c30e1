// How to reach and authenticate to the Kubernetes API server: in-cluster (ServiceAccount) or a kubeconfig file.
#pragma once

#include <optional>
#include <string>

namespace zm::k8s {

struct ClientConfig {
  std::string server;      // "https://host:port", no trailing slash
  std::string ca_pem;      // trust for the server certificate; empty = system roots
  bool insecure = false;   // kubeconfig insecure-skip-tls-verify
  std::string token;       // bearer token, or ...
  std::string token_file;  // ... a file re-read on every request (projected tokens rotate)
  std::string client_cert_pem;
  std::string client_key_pem;

  std::string Describe() const;  // "server (auth: ...)" for logs, never secrets
};

// KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}. `sa_dir` overrides the
// directory (tests).
std::optional<ClientConfig> InClusterConfig(
    std::string* error, const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");
// current-context of a kubeconfig (or `context` when not empty): server, certificate-authority(-data),
// insecure-skip-tls-verify, client-certificate(-data) + client-key(-data), token, tokenFile. Relative file paths
// resolve against the file's dir.
std::optional<ClientConfig> LoadKubeconfig(const std::string& path, std::string* error,
                                           const std::string& context = "");

}  // namespace zm::k8s
