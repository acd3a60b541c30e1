// meshctl's Kubernetes mode: with no --controller, the kubeconfig's cluster is asked where the controller is
// (locate.h), and a local listener relays gRPC through port-forwards to its operator port (bridge.h). The API server
// authenticates the user and authorizes get+create on pods/portforward; the controller's operator port trusts that.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "controller/k8s/http.h"
#include "tools/meshctl/kube/bridge.h"
#include "tools/meshctl/kube/locate.h"

namespace zm::meshctl::kube {

struct KubeOptions {
  std::string kubeconfig;  // --kubeconfig ("": $KUBECONFIG, ~/.kube/config)
  std::string context;     // --context ("": current-context)
  std::string ns = "zeromesh-system";
  std::string ca_cert;  // --ca-cert: the mesh root from a file instead of the trust-bundle ConfigMap
  int timeout_seconds = 5;
};

class KubeSession {
 public:
  // nullptr with *error; *usage is set when nothing says which cluster to ask (no kubeconfig, unknown context).
  static std::unique_ptr<KubeSession> Open(const KubeOptions& opts,
                                           const std::function<const char*(const char*)>& getenv, std::string* error,
                                           bool* usage);

  std::string address() const { return bridge_->address(); }  // 127.0.0.1:PORT for the gRPC channel
  const std::string& root_pem() const { return root_pem_; }
  std::string Describe() const;  // "pod NS/NAME (leader ...) through <server>"
  std::string last_tunnel_error() const { return bridge_->last_error(); }

 private:
  KubeSession() = default;
  std::unique_ptr<k8s::Http> api_;
  ControllerTarget target_;
  std::string root_pem_;
  std::unique_ptr<Bridge> bridge_;
};

}  // namespace zm::meshctl::kube
