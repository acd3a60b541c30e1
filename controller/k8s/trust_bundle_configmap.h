// Publishes the mesh's trust bundle (root certificates only) in a ConfigMap, the way istiod writes
// istio-ca-root-cert and Linkerd linkerd-identity-trust-roots: agents and anything else that must trust the mesh
// mount it, so nothing but the controller ever needs the CA Secret (which holds the private key).
#pragma once

#include <string>

#include "controller/k8s/http.h"

namespace zm::k8s {

constexpr const char* kTrustBundleKey = "root-cert.pem";

// Creates the ConfigMap or updates it when its bundle differs. False with *error (the caller retries later).
bool PublishTrustBundle(const Http& http, const std::string& ns, const std::string& name, const std::string& bundle_pem,
                        std::string* error);

}  // namespace zm::k8s
