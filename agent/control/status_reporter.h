// Periodic Status.Report: `collect` builds the report each time (the node field is filled in here).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/control/bootstrap.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::agent::control {

class StatusReporter {
 public:
  using CollectFn = std::function<zeromesh::v1::AgentStatus()>;
  StatusReporter(Bootstrap bootstrap, std::chrono::milliseconds interval, CollectFn collect);
  ~StatusReporter();

  void Start();
  void Stop();
  void ReportNow();  // e.g. right after a config change
  uint64_t sent() const { return sent_; }

 private:
  void Run();

  const Bootstrap bootstrap_;
  const std::chrono::milliseconds interval_;
  const CollectFn collect_;
  std::unique_ptr<zeromesh::v1::Status::Stub> stub_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  grpc::ClientContext* active_ = nullptr;  // the report in flight; Stop() cancels it (guarded by mu_)
  bool now_ = false;
  std::atomic<uint64_t> sent_{0};
  std::thread thread_;
};

}  // namespace zm::agent::control
