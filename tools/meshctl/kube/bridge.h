// A local 127.0.0.1:0 listener for meshctl's gRPC client: every accepted connection is relayed through its own
// Tunnel (a port-forward stream is one TCP connection to the pod). The first tunnel may be opened up front, so that
// refusals (401/403/404) are reported before gRPC tries; later failures are kept for explaining a failed RPC.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tools/meshctl/kube/tunnel.h"

namespace zm::meshctl::kube {

class Bridge {
 public:
  using Dial = std::function<std::unique_ptr<Tunnel>(std::string* error)>;
  // nullptr with *error if the listener cannot be made. `first`: an open tunnel for the first connection (optional).
  static std::unique_ptr<Bridge> Start(Dial dial, std::unique_ptr<Tunnel> first, std::string* error);
  ~Bridge();  // stops accepting and ends every relay

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string last_error() const;  // the last tunnel failure ("" if none)
  uint64_t connections() const { return connections_.load(); }

 private:
  Bridge() = default;
  void Accept();
  void Relay(int local, std::unique_ptr<Tunnel> tunnel);
  void SetError(const std::string& e);

  Dial dial_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the accept and relay loops
  uint16_t port_ = 0;
  std::unique_ptr<Tunnel> first_;  // accept thread only
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::vector<std::thread> relays_;  // guarded by mu_
  std::string last_error_;           // guarded by mu_
  std::atomic<uint64_t> connections_{0};
};

}  // namespace zm::meshctl::kube
