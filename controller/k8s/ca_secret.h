// The mesh CA kept in a Kubernetes Secret (type kubernetes.io/tls: tls.crt, tls.key, ca.crt). The first replica that
// finds no Secret generates a root and creates it; every other replica (and every restart) loads the same one. The
// private key never leaves the API server and the controller's memory. Unlike a CA rendered by Helm, nothing
// regenerates it on `helm template | kubectl apply` re-syncs, and it outlives uninstalls.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "controller/ca/authority.h"
#include "controller/k8s/http.h"

namespace zm::k8s {

// Retries transport errors and 5xx for up to `wait` (the API server may be starting); refuses a Secret whose contents
// are not a usable CA rather than replacing it.
std::unique_ptr<ca::Authority> LoadOrCreateCaSecret(const Http& http, const std::string& ns, const std::string& name,
                                                    std::chrono::seconds wait, std::string* error);
// One GET of the Secret (no creation, no retry): how the controller re-reads the CA to pick up a rotation.
std::unique_ptr<ca::Authority> LoadCaSecret(const Http& http, const std::string& ns, const std::string& name,
                                            std::string* error);

}  // namespace zm::k8s
