#include "agent/node/uninstall_query.h"

#include <nlohmann/json.hpp>

#include "controller/k8s/client_config.h"
#include "controller/k8s/http.h"

namespace zm::agent {

bool AskApiServerIfUninstalling(const UninstallCheck& check, std::string* reason) {
  std::string error;
  auto config = k8s::InClusterConfig(&error, check.credentials_dir);
  if (!config) {
    *reason = "cannot ask the API server (" + error + "): keeping the data path";
    return false;
  }
  k8s::Http http(*config);
  auto r = http.Request("GET", "/apis/apps/v1/namespaces/" + check.namespace_name + "/daemonsets/" + check.daemonset,
                        "", "", 5);
  const std::string what = "DaemonSet " + check.namespace_name + "/" + check.daemonset;
  if (r.error.empty() && r.status == 200) {
    auto ds = nlohmann::json::parse(r.body, nullptr, false);
    if (ds.is_object() && ds.contains("metadata") && ds["metadata"].contains("deletionTimestamp")) {
      *reason = what + " is being deleted";
      return true;
    }
    *reason = what + " exists";
    return false;
  }
  if (r.error.empty() && (r.status == 404 || r.status == 401 || r.status == 403)) {
    *reason = r.status == 404 ? what + " is gone"
                              : "the agent's API credentials are no longer accepted (" + r.Describe() +
                                    "): its ServiceAccount or Role went with the release";
    return true;
  }
  *reason = "asking for " + what + " failed (" + r.Describe() + "): keeping the data path";
  return false;
}

}  // namespace zm::agent
