// Agent bootstrap file: how to reach and authenticate to the controller.
//   {"controller":"127.0.0.1:15012","node":"node1","token":"...","caCert":"/path/root.pem",
//    "serverName":"mesh-controller.zeromesh"}      (serverName optional; relative caCert is relative to the file)
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

namespace zm::agent::control {

struct Bootstrap {
  std::string controller;
  std::string node;
  std::string token;
  std::string ca_cert_path;
  std::string ca_cert_pem;  // the mesh root(s) the controller's serving cert chains to
  std::string server_name = "mesh-controller.zeromesh";
};

bool ParseBootstrap(const std::string& json_text, const std::string& path, Bootstrap* out, std::string* error);
bool LoadBootstrap(const std::string& path, Bootstrap* out, std::string* error);

// TLS channel trusting only the mesh root, verifying the controller's DNS SAN `server_name`.
std::shared_ptr<grpc::Channel> MakeChannel(const Bootstrap& b);
// Join-token authentication metadata for one call.
void AddAuth(grpc::ClientContext* ctx, const Bootstrap& b);

}  // namespace zm::agent::control
