// Config stream client: hello (with resume point), apply pushes through a callback, ACK/NACK, reconnect with backoff.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/control/backoff.h"
#include "agent/control/bootstrap.h"
#include "agent/control/config_state.h"
#include "zeromesh/v1/config.grpc.pb.h"

namespace zm::agent::control {

class ConfigClient {
 public:
  // Returns "" to accept (-> ACK) or the reason to reject (-> NACK; the previously applied state stays in force).
  using ApplyFn = std::function<std::string(const ConfigState&)>;

  struct Options {
    std::string agent_version = "0.1.0";
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
  };

  ConfigClient(Bootstrap bootstrap, ApplyFn apply, Options opts);
  ConfigClient(Bootstrap bootstrap, ApplyFn apply) : ConfigClient(std::move(bootstrap), std::move(apply), Options()) {}
  ~ConfigClient();

  void Start();
  void Stop();

  uint64_t applied_version() const { return applied_version_; }
  bool connected() const { return connected_; }
  uint64_t reconnects() const { return reconnects_; }
  std::string last_error() const;

 private:
  void Run();
  // One stream lifetime. Returns true if at least one push arrived (resets the backoff).
  bool RunStream(zeromesh::v1::Config::Stub* stub);
  void SetError(const std::string& e);

  const Bootstrap bootstrap_;
  const ApplyFn apply_;
  const Options opts_;
  ConfigState held_;  // what the controller thinks we hold (even if our apply rejected it)
  std::atomic<uint64_t> applied_version_{0};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> reconnects_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  grpc::ClientContext* active_ = nullptr;  // cancelled by Stop()
  std::string last_error_;
  std::thread thread_;
};

}  // namespace zm::agent::control
