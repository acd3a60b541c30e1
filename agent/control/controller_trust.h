// Which roots the agent trusts for the controller's serving certificate: the bootstrap CA file (re-read, because a
// Kubernetes ConfigMap mount changes under a running pod) plus the trust bundle the controller pushed last. So a CA
// rotation (new root added, signer switched, old root removed) never locks an agent out of its controller, and the
// gRPC channel does not have to be rebuilt (streams stay up): a custom verifier checks each handshake against the
// roots of the moment.
#pragma once

#include <grpcpp/security/credentials.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace zm::agent::control {

class ControllerTrust {
 public:
  // `ca_file` may be empty (the roots are then `initial_pem` and what is pushed).
  ControllerTrust(std::string ca_file, std::string initial_pem);

  void SetPushedBundle(const std::string& pem);
  // "" if `chain_pem` (leaf first) chains to a trusted root and the leaf names DNS `host`; otherwise why not.
  std::string Verify(const std::string& chain_pem, const std::string& host);
  std::string RootsPem();  // the union, as PEM (for tests and debugging)

 private:
  void RefreshFileLocked();

  const std::string ca_file_;
  std::mutex mu_;
  std::string file_pem_;
  std::string pushed_pem_;
  std::chrono::steady_clock::time_point next_file_check_{};
};

// TLS channel credentials whose server check is ControllerTrust::Verify for `server_name`.
std::shared_ptr<grpc::ChannelCredentials> ControllerChannelCredentials(std::shared_ptr<ControllerTrust> trust,
                                                                       std::string server_name);

}  // namespace zm::agent::control
