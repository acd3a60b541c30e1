// Agent bootstrap file: how to reach and authenticate to the controller.
//   {"controller":"127.0.0.1:15012","node":"node1","token":"...","caCert":"/path/root.pem",
//    "serverName":"mesh-controller.zeromesh"}      (serverName optional; relative caCert is relative to the file)
// Kubernetes: "tokenFile" instead of "token" names a projected ServiceAccount token, re-read for every call because the
// kubelet rotates it; "node" may be left out (the agent's --node applies). "controller" may list several addresses
// ("ipv4:10.0.0.1:15012,10.0.0.2:15012"): gRPC picks the first that accepts (only the leader controller listens).
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "agent/control/controller_trust.h"

namespace zm::agent::control {

struct Bootstrap {
  std::string controller;
  std::string node;
  std::string token;
  std::string token_file;  // instead of token
  std::string ca_cert_path;
  std::string ca_cert_pem;  // the mesh root(s) the controller's serving cert chains to
  std::string server_name = "mesh-controller.zeromesh";
  // Shared by every channel made from this bootstrap (and its copies): the roots follow the pushed trust bundle.
  std::shared_ptr<ControllerTrust> trust;
};

bool ParseBootstrap(const std::string& json_text, const std::string& path, Bootstrap* out, std::string* error);
bool LoadBootstrap(const std::string& path, Bootstrap* out, std::string* error);

// TLS channel trusting only the mesh roots (see ControllerTrust), verifying the controller's DNS SAN `server_name`.
std::shared_ptr<grpc::Channel> MakeChannel(const Bootstrap& b);
// The bearer token for one call: `token`, or the current contents of `token_file` ("" if unreadable).
std::string CurrentToken(const Bootstrap& b);
// Authentication metadata for one call.
void AddAuth(grpc::ClientContext* ctx, const Bootstrap& b);

}  // namespace zm::agent::control
