// A proxy worker for tests that drive H2Conn, Http1Conn, InboundHttp or H2Mirror over socketpairs: the
// WorkerContext's event loop on a thread of its own, and a stop that leaves nothing open behind.
#pragma once

#include <future>
#include <thread>
#include <utility>
#include <vector>

#include "agent/proxy/worker_context.h"

namespace zm::testing {

class WorkerThread {
 public:
  WorkerThread() = default;
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;
  ~WorkerThread() { Stop(); }

  void Start(proxy::WorkerContext& ctx) {
    ctx_ = &ctx;
    thread_ = std::thread([&ctx] { ctx.loop.Run(); });
  }

  // Stops the loop and joins it, then closes every handler still open: with the loop stopped this thread owns them.
  void Stop() {
    if (ctx_ == nullptr) return;
    ctx_->loop.Stop();
    thread_.join();
    std::vector<proxy::Closable*> all(ctx_->live.begin(), ctx_->live.end());
    for (proxy::Closable* c : all) {
      if (ctx_->live.count(c)) c->ForceClose();
    }
    ctx_->loop.RunGarbage();
    ctx_ = nullptr;
  }

  // Runs |f| on the worker thread and returns its result (worker state is the worker's own).
  template <typename F>
  auto Run(F f) {
    std::promise<decltype(f())> p;
    auto fut = p.get_future();
    ctx_->loop.Post([&] { p.set_value(f()); });
    return fut.get();
  }

 private:
  proxy::WorkerContext* ctx_ = nullptr;
  std::thread thread_;
};

}  // namespace zm::testing
