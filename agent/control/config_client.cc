#include "agent/control/config_client.h"
#include "agent/control/push_assembly.h"

#include "common/log.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;

ConfigClient::ConfigClient(Bootstrap bootstrap, ApplyFn apply, Options opts)
    : bootstrap_(std::move(bootstrap)), apply_(std::move(apply)), opts_(opts) {}

ConfigClient::~ConfigClient() {
  Stop();
}

void ConfigClient::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ConfigClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (active_) active_->TryCancel();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

std::string ConfigClient::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void ConfigClient::SetError(const std::string& e) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = e;
}

void ConfigClient::Run() {
  auto channel = MakeChannel(bootstrap_);
  auto stub = v1::Config::NewStub(channel);
  Backoff backoff(opts_.initial_backoff, opts_.max_backoff);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    if (RunStream(stub.get())) backoff.Reset();
    reconnects_++;
    auto delay = backoff.Next();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, delay, [&] { return stop_; })) return;
  }
}

bool ConfigClient::RunStream(v1::Config::Stub* stub) {
  grpc::ClientContext ctx;
  AddAuth(&ctx, bootstrap_);
  // Wait for the channel instead of failing fast: with the sync API a connection attempt only progresses while some
  // thread polls the channel, and a fast-failing call leaves nobody polling during the backoff, so after a long
  // controller outage handshakes stalled until gRPC's 5 s backup poller timed them out, again and again.
  // Stop() cancels the call, so waiting never blocks shutdown.
  ctx.set_wait_for_ready(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return false;
    active_ = &ctx;
  }
  bool got_push = false;
  auto stream = stub->Stream(&ctx);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_node(bootstrap_.node);
  hello.mutable_hello()->set_agent_version(opts_.agent_version);
  hello.mutable_hello()->set_last_version(held_.version);
  hello.mutable_hello()->set_last_epoch(held_.epoch);
  hello.mutable_hello()->set_accepts_parts(true);
  if (stream->Write(hello)) {
    connected_ = true;
    v1::ConfigPush part, push;
    PushAssembly assembly;
    while (stream->Read(&part)) {
      got_push = true;
      ConfigState next;
      std::string error;
      v1::AgentMessage reply;
      const uint64_t part_version = part.version();
      PushAssembly::Step step = assembly.Add(std::move(part), &push, &error);
      if (step == PushAssembly::Step::kMore) continue;
      if (step == PushAssembly::Step::kBad || !ApplyPush(held_, push, &next, &error)) {
        // We cannot follow this delta: forget what we hold so the next hello asks for a full snapshot.
        log::Warn("config: cannot apply the push, resyncing", {{"error", error}});
        held_ = ConfigState();
        reply.mutable_nack()->set_version(step == PushAssembly::Step::kBad ? part_version : push.version());
        reply.mutable_nack()->set_error(error);
        stream->Write(reply);
        ctx.TryCancel();
        break;
      }
      held_ = std::move(next);
      std::string reject = apply_(held_);
      if (reject.empty()) {
        applied_version_ = held_.version;
        reply.mutable_ack()->set_version(held_.version);
        log::Info("config: applied", {{"version", held_.version}, {"resources", held_.resources.size()}});
      } else {
        reply.mutable_nack()->set_version(held_.version);
        reply.mutable_nack()->set_error(reject);
        log::Warn("config: rejected", {{"version", held_.version}, {"error", reject}});
      }
      if (!stream->Write(reply)) {
        ctx.TryCancel();
        break;
      }
    }
  }
  connected_ = false;
  grpc::Status st = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = nullptr;
    if (stop_) return got_push;
  }
  if (!st.ok()) {
    SetError(st.error_message());
    log::Warn("config: stream ended", {{"code", static_cast<int>(st.error_code())}, {"error", st.error_message()}});
  }
  return got_push;
}

}  // namespace zm::agent::control
