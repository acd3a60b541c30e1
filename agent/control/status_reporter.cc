#include "agent/control/status_reporter.h"

#include "common/log.h"

namespace zm::agent::control {

StatusReporter::StatusReporter(Bootstrap bootstrap, std::chrono::milliseconds interval, CollectFn collect)
    : bootstrap_(std::move(bootstrap)),
      interval_(interval),
      collect_(std::move(collect)),
      stub_(zeromesh::v1::Status::NewStub(MakeChannel(bootstrap_))) {}

StatusReporter::~StatusReporter() {
  Stop();
}

void StatusReporter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void StatusReporter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (active_) active_->TryCancel();  // a report waiting for an unreachable controller must not delay shutdown
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void StatusReporter::ReportNow() {
  std::lock_guard<std::mutex> lock(mu_);
  now_ = true;
  cv_.notify_all();
}

void StatusReporter::Run() {
  std::string last_error;
  while (true) {
    zeromesh::v1::AgentStatus status = collect_();
    status.set_node(bootstrap_.node);
    grpc::ClientContext ctx;
    AddAuth(&ctx, bootstrap_);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ctx.set_wait_for_ready(true);  // poll the channel while it (re)connects, up to the deadline
    zeromesh::v1::ReportAck ack;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      active_ = &ctx;
    }
    grpc::Status st = stub_->Report(&ctx, status, &ack);
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_ = nullptr;
    }
    if (st.ok()) {
      sent_++;
      last_error.clear();
    } else if (st.error_message() != last_error) {  // log a failure once, not every interval
      last_error = st.error_message();
      log::Warn("status: report failed", {{"error", last_error}});
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, interval_, [&] { return stop_ || now_; });
    if (stop_) return;
    now_ = false;
  }
}

}  // namespace zm::agent::control
