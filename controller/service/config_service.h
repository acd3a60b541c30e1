// Config.Stream: full snapshot first, then deltas; ACK/NACK tracking; resume from a version still in history. Served
// with gRPC's callback API (ConfigStream, one reactor per stream): 1,000 agents cost a few threads, not 2,000. Raw
// (bytes) so that each push is encoded once for every stream (config_stream.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "controller/config/push_cache.h"
#include "controller/service/config_stream.h"
#include "controller/service/context.h"
#include "controller/service/worker_pool.h"
#include "zeromesh/v1/config.grpc.pb.h"

namespace zm::ctrl {

class ConfigService final : public zeromesh::v1::Config::WithRawCallbackMethod_Stream<zeromesh::v1::Config::Service> {
 public:
  explicit ConfigService(ServiceContext* ctx);
  ~ConfigService() override;  // after the server's Shutdown: every stream is done
  ConfigStream::Reactor* Stream(grpc::CallbackServerContext* context) override;

 private:
  std::vector<std::shared_ptr<ConfigStream>> Streams();
  void Tick();

  ServiceContext* ctx_;
  PushCache pushes_;
  StreamEnv env_;
  std::mutex mu_;
  std::unordered_map<const ConfigStream*, std::shared_ptr<ConfigStream>> streams_;  // open, until OnDone
  bool stop_ticker_ = false;                                                        // guarded by mu_
  std::condition_variable ticker_cv_;
  std::thread ticker_;  // the credential re-check of every stream (and the stop, should a kick be missed)
  uint64_t subscription_ = 0;
  // Authentication (TokenReview) may wait on the API server; pushes are CPU-bound. Separate pools keep a slow API
  // server from delaying pushes, and a snapshot build from delaying joins. Last: destroyed (joined) first.
  WorkerPool auth_pool_{4, "zm-cfg-auth"};
  WorkerPool push_pool_{2, "zm-cfg-push"};
};

}  // namespace zm::ctrl
