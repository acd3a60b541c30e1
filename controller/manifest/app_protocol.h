// Which protocol a Service port speaks, read the way Istio and Linkerd read it, for both controller modes (Kubernetes
// Services in controller/k8s/translate.cc, Service manifests in decode.cc).
#pragma once

#include <string>

#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

// appProtocol when set: "http" -> HTTP, "kubernetes.io/h2c" or "http2" -> HTTP2, "grpc" -> GRPC, anything else
// (tcp, https, mysql, ...) -> TCP: the owner said what the port speaks, so its name does not override it (Istio).
// Without appProtocol, the port name: "http"/"http-*" -> HTTP, "http2"/"http2-*" -> HTTP2, "grpc"/"grpc-*" -> GRPC;
// else TCP. Case-insensitive.
zeromesh::v1::AppProtocol ResolveAppProtocol(const std::string& app_protocol, const std::string& port_name);

// "" when `s` is acceptable as an appProtocol value (Kubernetes: a label-style key), else the reason.
std::string CheckAppProtocol(const std::string& s);

}  // namespace zm::manifest
