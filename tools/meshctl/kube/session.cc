#include "tools/meshctl/kube/session.h"

#include <fstream>
#include <sstream>

#include "controller/k8s/client_config.h"
#include "tools/meshctl/kube/kubeconfig.h"

namespace zm::meshctl::kube {

std::unique_ptr<KubeSession> KubeSession::Open(const KubeOptions& opts,
                                               const std::function<const char*(const char*)>& getenv,
                                               std::string* error, bool* usage) {
  *usage = false;
  std::string path = FindKubeconfig(opts.kubeconfig, getenv, error);
  if (path.empty()) {
    *usage = true;
    return nullptr;
  }
  auto config = k8s::LoadKubeconfig(path, error, opts.context);
  if (!config) {
    *usage = true;
    return nullptr;
  }
  std::unique_ptr<KubeSession> s(new KubeSession());
  s->api_ = std::make_unique<k8s::Http>(*config);
  auto target = LocateController(*s->api_, opts.ns, opts.ca_cert.empty(), error);
  if (!target) return nullptr;
  s->target_ = *target;
  s->root_pem_ = target->root_pem;
  if (!opts.ca_cert.empty()) {
    std::ifstream f(opts.ca_cert);
    std::stringstream pem;
    pem << f.rdbuf();
    if (!f || pem.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      *error = "--ca-cert " + opts.ca_cert + ": cannot read a PEM certificate";
      *usage = true;
      return nullptr;
    }
    s->root_pem_ = pem.str();
  }
  PodPort pp{target->ns, target->pod, target->operator_port};
  const k8s::Http* api = s->api_.get();
  const int timeout = opts.timeout_seconds;
  // The first tunnel now: a refusal (credentials, permission, pod gone) is reported as itself, not as a gRPC error.
  auto first = Tunnel::Open(*api, pp, timeout, error);
  if (!first) return nullptr;
  s->bridge_ = Bridge::Start([api, pp, timeout](std::string* err) { return Tunnel::Open(*api, pp, timeout, err); },
                             std::move(first), error);
  if (!s->bridge_) return nullptr;
  return s;
}

std::string KubeSession::Describe() const {
  return "pod " + target_.ns + "/" + target_.pod + ":" + std::to_string(target_.operator_port) + ", " + target_.role +
         ", through " + api_->config().server;
}

}  // namespace zm::meshctl::kube
