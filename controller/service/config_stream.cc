#include "controller/service/config_stream.h"

#include <algorithm>

#include "common/log.h"
#include "controller/config/push_parts.h"

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

class ConfigStreamReactor final : public ConfigStream::Reactor {
 public:
  explicit ConfigStreamReactor(std::shared_ptr<ConfigStream> s) : s_(std::move(s)) {}
  void OnReadDone(bool ok) override { s_->OnReadDone(ok); }
  void OnWriteDone(bool ok) override { s_->OnWriteDone(ok); }
  void OnCancel() override { s_->RequestFinish({grpc::StatusCode::CANCELLED, "cancelled"}); }
  void OnDone() override {
    s_->OnDone();
    delete this;
  }

 private:
  std::shared_ptr<ConfigStream> s_;  // gRPC holds no reaction running while OnDone runs
};

ConfigStream::Reactor* ConfigStream::Open(grpc::CallbackServerContext* context, const StreamEnv* env) {
  auto s = std::make_shared<ConfigStream>(AgentAuthenticator::CallerOf(*context), env);
  auto* reactor = new ConfigStreamReactor(s);
  s->reactor_ = reactor;
  s->holds_ = 1;  // the authentication's
  env->opened(s);
  // Authentication may block (a TokenReview goes to the API server): never on gRPC's callback threads.
  env->auth_pool->Post([s] { s->Authenticate(); });
  return reactor;
}

bool ConfigStream::TryHoldLocked() {
  if (done_ || finished_ || want_finish_) return false;
  holds_++;
  return true;
}

void ConfigStream::Release() {
  grpc::Status status;
  bool opened;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--holds_ > 0 || !want_finish_ || finished_) return;
    finished_ = true;
    status = status_;
    opened = phase_ == Phase::kOpen;
  }
  Finish(status, opened);
}

void ConfigStream::Finish(const grpc::Status& status, bool opened) {
  if (opened) {  // before the agent sees the end: its reconnect finds it closed here
    env_->ctx->agents->StreamClosed(node_);
    log::Info("config: agent disconnected", {{"node", node_}});
  }
  reactor_->Finish(status);  // with no lock held: gRPC may run reactions from inside
}

void ConfigStream::RequestFinish(grpc::Status status) {
  bool opened;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (!want_finish_) {
      want_finish_ = true;
      // A stream that ends while the controller stops says so, whatever ended it (as the agent must reconnect).
      status_ = phase_ == Phase::kOpen && env_->ctx->stopping
                    ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down")
                    : std::move(status);
    }
    if (holds_ > 0) return;  // the last holder finishes
    finished_ = true;
    status = status_;
    opened = phase_ == Phase::kOpen;
  }
  Finish(status, opened);
}

void ConfigStream::StartReadHeld() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!TryHoldLocked()) return;
  }
  reactor_->StartRead(&in_bytes_);
  Release();
}

void ConfigStream::Authenticate() {
  std::string node;
  if (auto st = env_->ctx->auth->Authenticate(caller_, &node); !st.ok()) {
    log::Warn("config: unauthenticated", {{"peer", caller_.peer}, {"error", st.error_message()}});
    RequestFinish(st);
    Release();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    node_ = node;
    phase_ = Phase::kHello;
  }
  reactor_->StartRead(&in_bytes_);  // still holding: legal even if finishing was asked for meanwhile
  Release();
}

void ConfigStream::OnReadDone(bool ok) {
  Phase phase;
  {
    std::lock_guard<std::mutex> lock(mu_);
    phase = phase_;
  }
  if (!ok) {
    RequestFinish(phase == Phase::kHello ? grpc::Status(grpc::StatusCode::CANCELLED, "stream closed before hello")
                                         : grpc::Status::OK);
    return;
  }
  in_.Clear();
  if (grpc::Status st = grpc::SerializationTraits<v1::AgentMessage>::Deserialize(&in_bytes_, &in_); !st.ok()) {
    log::Warn("config: undecodable agent message", {{"peer", caller_.peer}, {"error", st.error_message()}});
    RequestFinish({grpc::StatusCode::INVALID_ARGUMENT, "not an AgentMessage: " + st.error_message()});
    return;
  }
  if (phase == Phase::kHello) {
    OnHello();
    return;
  }
  if (in_.has_ack()) {
    Settle(in_.ack().version(), true);
    env_->ctx->agents->Acked(node_, in_.ack().version());
  } else if (in_.has_nack()) {
    std::string error = in_.nack().error().substr(0, 4096);
    Settle(in_.nack().version(), false);
    env_->ctx->agents->Nacked(node_, in_.nack().version(), error);
    log::Warn("config: agent rejected config", {{"node", node_}, {"version", in_.nack().version()}, {"error", error}});
  }
  StartReadHeld();
}

void ConfigStream::OnHello() {
  if (!in_.has_hello()) {
    RequestFinish({grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello"});
    return;
  }
  const auto& hello = in_.hello();
  if (!hello.node().empty() && hello.node() != node_) {
    RequestFinish({grpc::StatusCode::UNAUTHENTICATED,
                   "hello names node '" + hello.node() + "' but the credential belongs to '" + node_ + "'"});
    return;
  }
  std::shared_ptr<const Snapshot> base;
  if (hello.last_version() > 0 && hello.last_epoch() == env_->ctx->store->epoch()) {
    base = env_->ctx->store->AtVersion(hello.last_version());
  }
  log::Info("config: agent connected",
            {{"node", node_}, {"agent_version", hello.agent_version()}, {"resume_from", base ? base->version : 0}});
  env_->ctx->agents->StreamOpened(node_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    base_ = std::move(base);  // no writer yet: it starts once the phase is kOpen
    accepts_parts_ = hello.accepts_parts();
    opened_ = Clock::now();
    phase_ = Phase::kOpen;
  }
  StartReadHeld();
  Kick();
}

// Push latency: from the version becoming current (or this stream opening, if later) to the agent's ACK.
void ConfigStream::Settle(uint64_t version, bool acked) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(version);
  if (it != pending_.end() && env_->ctx->metrics) {
    if (acked) {
      env_->ctx->metrics->PushAcked(std::chrono::duration<double>(Clock::now() - it->second).count());
    } else {
      env_->ctx->metrics->PushNacked();
    }
  }
  pending_.erase(pending_.begin(), pending_.upper_bound(version));  // an ACK covers every older push
}

void ConfigStream::Kick() {
  if (env_->ctx->stopping) {
    RequestFinish({grpc::StatusCode::UNAVAILABLE, "controller shutting down"});
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kOpen) return;  // the hello kicks once it is in
    kicked_ = true;
    if (writing_ || !TryHoldLocked()) return;  // the writer looks again when its write is done
    writing_ = true;
  }
  env_->push_pool->Post([self = shared_from_this()] { self->WriteNewest(); });
}

void ConfigStream::WriteNewest() {
  bool idle, have_slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = false;                       // a publish from here on kicks again
    idle = want_finish_ || waiting_slot_;  // finishing; or queued at the gate, whose call kicks again
    have_slot = slot_.held();
  }
  auto* store = env_->ctx->store;
  std::shared_ptr<const Snapshot> snap;
  if (!idle) snap = store->Current();
  if (!snap || (base_ && snap->version == base_->version)) {
    WriterIdle();
    return;
  }
  auto* gate = env_->ctx->full_pushes;
  if (!base_ && gate && !have_slot) {
    // A full snapshot waits for a slot without holding a thread: the gate calls OnSlot when one is free.
    {
      std::lock_guard<std::mutex> lock(mu_);
      waiting_slot_ = true;
      slot_waiter_ = 0;
    }
    uint64_t id = 0;
    auto slot =
        gate->AcquireOrQueue([self = shared_from_this()](FullPushGate::Slot s) { self->OnSlot(std::move(s)); }, &id);
    bool got = slot.held();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (got) {
        waiting_slot_ = false;
        slot_ = std::move(slot);  // slot_ was empty: nothing is released under the lock
      } else if (waiting_slot_) {
        slot_waiter_ = id;  // (unless the gate called OnSlot already)
      }
    }
    if (!got) {
      WriterIdle();
      return;
    }
    snap = store->Current();
  }
  auto parts = env_->pushes->Get(base_.get(), *snap, store->epoch(), "");
  if (auto* metrics = env_->ctx->metrics) {
    auto published = metrics->PublishedAt(snap->version).value_or(opened_);
    std::lock_guard<std::mutex> lock(mu_);
    pending_[snap->version] = std::max(published, opened_);
  }
  if (!accepts_parts_ && parts->size() > 1) {  // an agent from before parts: one message, as it always got
    std::vector<v1::ConfigPush> decoded;
    DecodeParts(*parts, &decoded);  // our own encoding
    parts = std::make_shared<const PushCache::Parts>(PushCache::Parts{JoinParts(decoded).SerializeAsString()});
  }
  sending_ = std::move(snap);
  parts_ = std::move(parts);
  next_part_ = 0;
  StartNextPart();
}

namespace {

// Part `i` of `parts` as a ByteBuffer that refers to its bytes (keeping `parts` alive) instead of copying them.
grpc::ByteBuffer Borrow(const std::shared_ptr<const PushCache::Parts>& parts, size_t i) {
  const std::string& bytes = (*parts)[i];
  auto* keep = new std::shared_ptr<const PushCache::Parts>(parts);
  grpc::Slice slice(
      const_cast<char*>(bytes.data()), bytes.size(),
      [](void* p) { delete static_cast<std::shared_ptr<const PushCache::Parts>*>(p); }, keep);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

// One write in flight at a time; a version published meanwhile is sent after it, as a delta from what was written.
void ConfigStream::StartNextPart() {
  bool write;
  {
    std::lock_guard<std::mutex> lock(mu_);  // (also orders the writer's fields for the reaction's thread)
    write = !want_finish_;
    if (write) out_ = Borrow(parts_, next_part_);
  }
  if (!write) {
    WriterIdle();
    return;
  }
  reactor_->StartWrite(&out_);  // out_ stays until OnWriteDone
}

void ConfigStream::OnWriteDone(bool ok) {
  if (!ok) {
    RequestFinish(grpc::Status::OK);
    WriterIdle();
    return;
  }
  bool more;
  {
    std::lock_guard<std::mutex> lock(mu_);
    more = ++next_part_ < parts_->size();
  }
  if (more) {
    StartNextPart();
    return;
  }
  if (env_->ctx->metrics) env_->ctx->metrics->PushSent();
  env_->ctx->agents->Sent(node_, sending_->version);
  FullPushGate::Slot slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    base_ = std::move(sending_);
    parts_.reset();
    out_.Clear();
    slot = std::move(slot_);
  }
  slot.Release();  // without our lock: the gate may hand it to the next waiter from here
  WriterIdle();
}

void ConfigStream::WriterIdle() {
  bool again;
  {
    std::lock_guard<std::mutex> lock(mu_);
    again = kicked_ && !want_finish_;
    if (!again) writing_ = false;
  }
  if (again) {  // keeps writing_ and the hold
    env_->push_pool->Post([self = shared_from_this()] { self->WriteNewest(); });
    return;
  }
  Release();
}

void ConfigStream::OnSlot(FullPushGate::Slot slot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_slot_ = false;
    slot_waiter_ = 0;
    if (!done_ && !want_finish_) slot_ = std::move(slot);
  }
  // An unused slot is released when `slot` goes, after the lock: to the next waiter.
  Kick();
}

// The credential is checked again while the stream is open: a revoked or expired join token (or a ServiceAccount
// token whose pod is gone) ends it. One ticker for all streams every 500 ms, with the token file polled as often,
// keeps that under 2 s. The check runs on the auth pool since a TokenReview may block on the API server.
void ConfigStream::Recheck() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kOpen || rechecking_ || done_ || finished_ || want_finish_) return;
    rechecking_ = true;
  }
  // No hold: the check reads only caller_, so a stream ending meanwhile does not wait for a queued check.
  env_->auth_pool->Post([self = shared_from_this()] { self->RunRecheck(); });
}

void ConfigStream::RunRecheck() {
  bool ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended = done_ || finished_ || want_finish_;
  }
  std::string owner;
  grpc::Status st;
  if (!ended) st = env_->ctx->auth->Authenticate(caller_, &owner);
  // Only a verdict on the credential ends the stream; an unreachable API server or throttling does not.
  bool refused = !ended && (st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                            st.error_code() == grpc::StatusCode::PERMISSION_DENIED || (st.ok() && owner != node_));
  {
    std::lock_guard<std::mutex> lock(mu_);
    rechecking_ = false;
  }
  if (refused) {
    std::string why = st.ok() ? "the credential now belongs to node '" + owner + "'" : st.error_message();
    log::Warn("config: credential no longer valid; closing the stream", {{"node", node_}, {"error", why}});
    RequestFinish({grpc::StatusCode::UNAUTHENTICATED, "credential no longer valid: " + why});
  }
}

void ConfigStream::OnDone() {
  uint64_t waiter = 0;
  FullPushGate::Slot slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    if (waiting_slot_) waiter = slot_waiter_;
    slot = std::move(slot_);
  }
  if (waiter != 0) env_->ctx->full_pushes->Cancel(waiter);  // lost the race? OnSlot sees done_ and passes it on
  slot.Release();
  env_->closed(this);
}

}  // namespace zm::ctrl
