// One agent's Config.Stream served by gRPC callbacks (a ServerBidiReactor): no thread waits for it. Reads, ACKs and
// the next part of a push run in gRPC's reactions; what may block runs on the service's worker pools: authentication
// (a ServiceAccount token is a TokenReview call to the API server) and building a push (a full snapshot of 100,000
// workloads takes a while, once per version, shared through PushCache). A new version kicks the stream
// (ConfigStore::Subscribe); the credential re-check is kicked by one ticker for all streams.
//
// Lifetime: the reactor is deleted in OnDone; everything that may call it (pool tasks, the ticker, the store listener,
// the full-push gate's queue) holds this shared state instead, and calls the reactor only while holding a "hold":
// Finish waits until no hold is left, and no hold is taken once finishing began, so nothing touches the reactor after
// Finish. The ServerContext is read only in the handler (the credential is copied), so a re-check holds nothing.
//
// The method is served raw (bytes in, bytes out): pushes go out as PushCache encoded them, once for all streams,
// instead of gRPC encoding the same 13 MB snapshot again for each of 1,000 agents; agent messages are decoded here.
#pragma once

#include <grpcpp/support/server_callback.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "controller/config/push_cache.h"
#include "controller/service/context.h"
#include "controller/service/full_push_gate.h"
#include "controller/service/worker_pool.h"
#include "zeromesh/v1/config.grpc.pb.h"

namespace zm::ctrl {

class ConfigStream;

// What every stream borrows from ConfigService (which outlives them all).
struct StreamEnv {
  ServiceContext* ctx = nullptr;
  PushCache* pushes = nullptr;
  WorkerPool* auth_pool = nullptr;  // authentication at open and the credential re-checks
  WorkerPool* push_pool = nullptr;  // building and starting pushes
  std::function<void(const std::shared_ptr<ConfigStream>&)> opened;  // registers the stream for kicks and re-checks
  std::function<void(const ConfigStream*)> closed;                   // from OnDone
};

class ConfigStream : public std::enable_shared_from_this<ConfigStream> {
 public:
  using Reactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;

  // The reactor for a new stream; authentication starts on the auth pool.
  static Reactor* Open(grpc::CallbackServerContext* context, const StreamEnv* env);

  ConfigStream(AgentAuthenticator::Caller caller, const StreamEnv* env) : env_(env), caller_(std::move(caller)) {}

  void Kick();     // a new version (or the controller stopping): push the newest unless a write is in flight
  void Recheck();  // the credential re-check, queued on the auth pool unless one is running

 private:
  friend class ConfigStreamReactor;
  using Clock = ControllerMetrics::Clock;
  enum class Phase { kAuth, kHello, kOpen };

  // Reactions (gRPC's threads).
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnDone();

  void Authenticate();  // auth pool
  void RunRecheck();    // auth pool
  void OnHello();
  void Settle(uint64_t version, bool acked);
  void WriteNewest();  // push pool, as the writer
  void StartNextPart();
  void WriterIdle();  // the writer is done: again if kicked meanwhile, else gives its hold back
  void OnSlot(FullPushGate::Slot slot);
  void StartReadHeld();

  bool TryHoldLocked();  // mu_ held
  void Release();        // gives a hold back; the last one calls Finish if finishing was asked for
  void RequestFinish(grpc::Status status);
  void Finish(const grpc::Status& status, bool opened);  // StreamClosed if it opened, then the reactor's Finish

  const StreamEnv* env_;
  const AgentAuthenticator::Caller caller_;  // the call's credential, copied at open: re-checks need no context
  Reactor* reactor_ = nullptr;  // valid until OnDone; called only while holding a hold (or inside a reaction)

  std::mutex mu_;
  Phase phase_ = Phase::kAuth;
  int holds_ = 0;
  bool want_finish_ = false;  // no new holds; Finish when the last one goes
  bool finished_ = false;     // Finish called
  bool done_ = false;         // OnDone ran: the reactor is gone
  grpc::Status status_;
  bool writing_ = false;  // the writer (one push built or written at a time) is active and holds a hold
  bool kicked_ = false;   // a version may be newer than what the writer saw
  bool rechecking_ = false;
  bool waiting_slot_ = false;                      // queued at the full-push gate
  uint64_t slot_waiter_ = 0;                       // its id there (0 until known)
  FullPushGate::Slot slot_;                        // held from before the full snapshot until it is written
  std::map<uint64_t, Clock::time_point> pending_;  // versions written, not yet ACKed or NACKed

  // Set before phase_ becomes kOpen, read-only after.
  std::string node_;
  bool accepts_parts_ = false;
  Clock::time_point opened_;

  // The writer's: only the active writer (writing_) touches them.
  std::shared_ptr<const Snapshot> base_;  // what this agent holds, as far as we know
  std::shared_ptr<const Snapshot> sending_;
  std::shared_ptr<const PushCache::Parts> parts_;  // (one part, joined, for an agent from before parts)
  size_t next_part_ = 0;
  grpc::ByteBuffer out_;  // the part being written: it refers to parts_' bytes

  grpc::ByteBuffer in_bytes_;      // one read at a time
  zeromesh::v1::AgentMessage in_;  // ... decoded
};

}  // namespace zm::ctrl
