#include "controller/service/config_service.h"

#include <pthread.h>

#include <chrono>

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

constexpr auto kCredentialRecheck = std::chrono::milliseconds(500);

ConfigService::ConfigService(ServiceContext* ctx) : ctx_(ctx), pushes_(ctx->push_part_bytes) {
  env_.ctx = ctx_;
  env_.pushes = &pushes_;
  env_.auth_pool = &auth_pool_;
  env_.push_pool = &push_pool_;
  env_.opened = [this](const std::shared_ptr<ConfigStream>& s) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_[s.get()] = s;
  };
  env_.closed = [this](const ConfigStream* s) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.erase(s);
  };
  // A new version (or the controller stopping) kicks every stream, on the publisher's thread: a kick only queues work.
  subscription_ = ctx_->store->Subscribe([this] {
    for (const auto& s : Streams()) s->Kick();
  });
  ticker_ = std::thread([this] { Tick(); });
  pthread_setname_np(ticker_.native_handle(), "zm-cfg-recheck");
}

ConfigService::~ConfigService() {
  ctx_->store->Unsubscribe(subscription_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ticker_ = true;
  }
  ticker_cv_.notify_all();
  ticker_.join();
}

ConfigStream::Reactor* ConfigService::Stream(grpc::CallbackServerContext* context) {
  return ConfigStream::Open(context, &env_);
}

// A copy, so that kicks run without the registry's lock (a stream that finishes unregisters itself).
std::vector<std::shared_ptr<ConfigStream>> ConfigService::Streams() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ConfigStream>> out;
  out.reserve(streams_.size());
  for (const auto& [p, s] : streams_) out.push_back(s);
  return out;
}

void ConfigService::Tick() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!ticker_cv_.wait_for(lock, kCredentialRecheck, [this] { return stop_ticker_; })) {
    lock.unlock();
    bool stopping = ctx_->stopping;
    for (const auto& s : Streams()) {
      if (stopping) {
        s->Kick();  // ends it with UNAVAILABLE
      } else {
        s->Recheck();
      }
    }
    lock.lock();
  }
}

}  // namespace zm::ctrl
