// Shared fixtures for controller tests: temp dirs, an in-process controller on 127.0.0.1:0, CSR builders.
#pragma once

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/control/bootstrap.h"
#include "controller/controller.h"

namespace zm::test {

constexpr const char* kTokenNode1 = "node1-token-0123456789abcdef";
constexpr const char* kTokenNode2 = "node2-token-0123456789abcdef";

std::string MakeTempDir();
void WriteFile(const std::string& path, const std::string& text);
void RemoveTree(const std::string& path);
std::string ReadFileForTest(const std::string& path);

// A Workload manifest document.
std::string WorkloadYaml(const std::string& name, const std::string& ns, const std::string& sa, const std::string& node,
                         const std::string& ip, const std::string& app = "");

struct ControllerEnv {
  std::string dir;  // root temp dir: manifests/, ca/, tokens.yaml
  std::string manifests;
  std::unique_ptr<ctrl::Controller> controller;
  size_t push_part_bytes = 0;  // 0: the controller's default
  long max_full_pushes = -1;   // --max-concurrent-full-pushes; -1: the controller's default

  // Writes tokens (node1, node2) and starts a controller; manifests must already be in `manifests`.
  void Start(bool watch = true, uint32_t max_ttl = 86400);
  void Stop();
  agent::control::Bootstrap BootstrapFor(const std::string& node, const std::string& token) const;
  std::shared_ptr<grpc::Channel> Channel() const;
  std::string Address() const { return "127.0.0.1:" + std::to_string(controller->port()); }
};

ControllerEnv NewEnv();  // temp dirs with empty manifests/

enum class KeyKind { kP256, kP384, kRsa2048 };

struct CsrSpec {
  KeyKind key = KeyKind::kP256;
  std::vector<std::string> uris;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  std::vector<std::string> emails;
  bool ca = false;
  bool bad_signature = false;  // signed by a different key than the one it carries
};
std::string MakeCsr(const CsrSpec& spec);

// Adds the join-token metadata.
void Auth(grpc::ClientContext* ctx, const std::string& token, const std::string& node = "");

// Polls `pred` every 20 ms for up to `ms`.
bool WaitFor(const std::function<bool()>& pred, int ms);

}  // namespace zm::test
