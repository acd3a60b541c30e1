// meshctl's connection to mesh-controller: gRPC over TLS verified with the mesh root (--ca-cert), the join token as
// a bearer credential (any valid token may read status; an "admin: <token>" entry is meant for meshctl). In
// Kubernetes mode the address is meshctl's local port-forward bridge (kube/session.h) and there is no token.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::meshctl {

struct Connection {
  std::string controller;  // host:port
  std::string token;
  std::string ca_cert;  // PEM file of the mesh root
  std::chrono::milliseconds timeout{5000};
  std::string ca_pem;                            // the mesh root itself (Kubernetes mode), instead of ca_cert
  std::string description;                       // how the controller is reached, for messages ("": the address)
  std::function<std::string()> transport_error;  // why the last port-forward failed, if any
};

class Client {
 public:
  // nullptr with *error set when the CA file cannot be read.
  static std::unique_ptr<Client> Create(const Connection& conn, std::string* error);

  // false with *error = a one-line explanation (unreachable, TLS, token rejected...).
  bool GetStatus(zeromesh::v1::MeshStatus* out, std::string* error);
  bool GetResources(zeromesh::v1::ResourceSet* out, std::string* error);

 private:
  explicit Client(Connection conn) : conn_(std::move(conn)) {}
  void Prepare(grpc::ClientContext* ctx) const;
  std::string Explain(const grpc::Status& st) const;

  Connection conn_;
  std::unique_ptr<zeromesh::v1::Status::Stub> stub_;
};

}  // namespace zm::meshctl
