#include "agent/node/uninstall_check.h"

#include <nlohmann/json.hpp>
#include <regex>

#include "controller/k8s/client_config.h"
#include "controller/k8s/http.h"

namespace zm::agent {

bool ParseUninstallCheck(const std::string& spec, const std::string& credentials_dir, UninstallCheck* out,
                         std::string* error) {
  // DNS-1123 labels / subdomains, as Kubernetes validates namespace and DaemonSet names.
  static const std::regex kSpec(R"(([a-z0-9]([-a-z0-9]*[a-z0-9])?)/([a-z0-9]([-.a-z0-9]*[a-z0-9])?))");
  std::smatch m;
  if (spec.size() > 317 || !std::regex_match(spec, m, kSpec)) {
    *error = "--uninstall-check wants NAMESPACE/DAEMONSET (lower-case DNS names), got '" + spec + "'";
    return false;
  }
  out->namespace_name = m[1].str();
  out->daemonset = m[3].str();
  out->credentials_dir = credentials_dir;
  return true;
}

bool IsUninstalling(const UninstallCheck& check, std::string* reason) {
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
