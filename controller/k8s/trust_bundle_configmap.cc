#include "controller/k8s/trust_bundle_configmap.h"

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace zm::k8s {

using nlohmann::json;

bool PublishTrustBundle(const Http& http, const std::string& ns, const std::string& name, const std::string& bundle_pem,
                        std::string* error) {
  const std::string ref = ns + "/" + name;
  const std::string path = "/api/v1/namespaces/" + ns + "/configmaps/" + name;
  json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata",
              {{"name", name},
               {"namespace", ns},
               {"labels",
                {{"app.kubernetes.io/name", "zeromesh"},
                 {"app.kubernetes.io/component", "trust-bundle"},
                 {"app.kubernetes.io/managed-by", "mesh-controller"}}}}},
             {"data", {{kTrustBundleKey, bundle_pem}}}};
  HttpResponse got = http.Request("GET", path, "", "", 10);
  if (got.ok()) {
    json have = json::parse(got.body, nullptr, false);
    const json* data = have.is_object() && have.contains("data") ? &have["data"] : nullptr;
    if (data && data->is_object() && data->contains(kTrustBundleKey) && (*data)[kTrustBundleKey] == bundle_pem) {
      return true;
    }
    // Optimistic concurrency: another replica's write in between makes this one fail (409) and retry later.
    cm["metadata"]["resourceVersion"] = have["metadata"].value("resourceVersion", "");
    HttpResponse put = http.Request("PUT", path, cm.dump(), "application/json", 10);
    if (!put.ok()) {
      *error = "cannot update the trust-bundle ConfigMap " + ref + ": " + put.Describe();
      return false;
    }
    log::Info("trust bundle published", {{"configmap", ref}, {"change", "updated"}});
    return true;
  }
  if (got.status != 404) {
    *error = "cannot read the trust-bundle ConfigMap " + ref + ": " + got.Describe();
    return false;
  }
  HttpResponse made =
      http.Request("POST", "/api/v1/namespaces/" + ns + "/configmaps", cm.dump(), "application/json", 10);
  if (!made.ok() && made.status != 409) {
    *error = "cannot create the trust-bundle ConfigMap " + ref + ": " + made.Describe() +
             (made.status == 403 ? " (the chart's Role grants create on configmaps and update on this one)" : "");
    return false;
  }
  if (made.ok()) log::Info("trust bundle published", {{"configmap", ref}, {"change", "created"}});
  return made.ok();  // 409: another replica created it meanwhile; the next pass compares again
}

}  // namespace zm::k8s
