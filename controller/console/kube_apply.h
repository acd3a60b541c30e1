// How the wizard applies a manifest in Kubernetes mode: with the signed-in user's own token (never the controller's
// ServiceAccount), one server-side apply per document (PATCH, application/apply-patch+yaml, fieldManager
// zeromesh-console), so the API server's RBAC and admission decide exactly as for `kubectl apply --server-side`, and
// the console only ever owns the fields it wrote.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "controller/k8s/client_config.h"

namespace zm::ctrl::console {

struct KubeApplyResult {
  bool ok = false;
  int status = 0;                    // the API server's HTTP status of the first failure (0: transport)
  std::vector<std::string> errors;   // its message, one line each
  std::vector<std::string> applied;  // "Kind ns/name" of each document applied
};

class KubeApplier {
 public:
  // |base|: the controller's API server address and trust; its credentials are never used.
  explicit KubeApplier(k8s::ClientConfig base) : base_(std::move(base)) {}

  // Applies every document of |manifest| (Namespace, TrafficPermission, TCPRoute) as |user_token|.
  KubeApplyResult Apply(const std::string& user_token, const std::string& manifest) const;
  // The labels of a Namespace as |user_token| sees them (empty when it cannot read it).
  std::map<std::string, std::string> NamespaceLabels(const std::string& user_token, const std::string& ns) const;

  // The API path of one object, "" for a kind the wizard never writes. Exposed for tests.
  static std::string PathOf(const std::string& api_version, const std::string& kind, const std::string& ns,
                            const std::string& name);

 private:
  k8s::ClientConfig AsUser(const std::string& token) const;
  k8s::ClientConfig base_;
};

}  // namespace zm::ctrl::console
