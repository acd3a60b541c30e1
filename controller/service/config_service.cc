#include "controller/service/config_service.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "controller/config/push_parts.h"

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

constexpr auto kCredentialRecheck = std::chrono::milliseconds(500);

grpc::Status ConfigService::Stream(grpc::ServerContext* context,
                                   grpc::ServerReaderWriter<v1::ConfigPush, v1::AgentMessage>* stream) {
  std::string node;
  if (auto st = ctx_->auth->Authenticate(*context, &node); !st.ok()) {
    log::Warn("config: unauthenticated", {{"peer", context->peer()}, {"error", st.error_message()}});
    return st;
  }
  v1::AgentMessage first;
  if (!stream->Read(&first)) return {grpc::StatusCode::CANCELLED, "stream closed before hello"};
  if (!first.has_hello()) return {grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello"};
  const auto& hello = first.hello();
  if (!hello.node().empty() && hello.node() != node) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "hello names node '" + hello.node() + "' but the credential belongs to '" + node + "'"};
  }

  std::shared_ptr<const Snapshot> base;  // what this agent holds, as far as we know
  if (hello.last_version() > 0 && hello.last_epoch() == ctx_->store->epoch()) {
    base = ctx_->store->AtVersion(hello.last_version());
  }
  log::Info("config: agent connected",
            {{"node", node}, {"agent_version", hello.agent_version()}, {"resume_from", base ? base->version : 0}});
  ctx_->agents->StreamOpened(node);

  // Push latency: from the version becoming current (or this stream opening, if later) to the agent's ACK.
  using Clock = ControllerMetrics::Clock;
  const auto opened = Clock::now();
  std::mutex pending_mu;
  std::map<uint64_t, Clock::time_point> pending;  // versions written, not yet ACKed or NACKed
  auto settle = [&](uint64_t version, bool acked) {
    std::lock_guard<std::mutex> lock(pending_mu);
    auto it = pending.find(version);
    if (it != pending.end() && ctx_->metrics) {
      if (acked) {
        ctx_->metrics->PushAcked(std::chrono::duration<double>(Clock::now() - it->second).count());
      } else {
        ctx_->metrics->PushNacked();
      }
    }
    pending.erase(pending.begin(), pending.upper_bound(version));  // an ACK covers every older push
  };

  // Acks arrive on their own thread: the sync API allows one reader and one writer at a time.
  std::atomic<bool> reader_done{false};
  std::thread reader([&] {
    v1::AgentMessage msg;
    while (stream->Read(&msg)) {
      if (msg.has_ack()) {
        settle(msg.ack().version(), true);
        ctx_->agents->Acked(node, msg.ack().version());
      } else if (msg.has_nack()) {
        settle(msg.nack().version(), false);
        ctx_->agents->Nacked(node, msg.nack().version(), msg.nack().error().substr(0, 4096));
        log::Warn("config: agent rejected config",
                  {{"node", node}, {"version", msg.nack().version()}, {"error", msg.nack().error().substr(0, 4096)}});
      }
    }
    reader_done = true;
  });

  grpc::Status result = grpc::Status::OK;
  // The credential is checked again while the stream is open: a revoked or expired join token (or a ServiceAccount
  // token whose pod is gone) ends it. Every 500 ms, with the token file polled as often, keeps that under 2 s. The
  // agent sees CANCELLED (unblocking the reader below cancels the call); its reconnect is refused with the reason.
  auto recheck_at = Clock::now() + kCredentialRecheck;
  FullPushGate::Slot full_slot;  // held from before this stream's full snapshot until it is written
  while (!ctx_->stopping && !reader_done && !context->IsCancelled()) {
    if (Clock::now() >= recheck_at) {
      recheck_at = Clock::now() + kCredentialRecheck;
      std::string owner;
      auto st = ctx_->auth->Authenticate(*context, &owner);
      // Only a verdict on the credential ends the stream; an unreachable API server or throttling does not.
      bool refused = st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                     st.error_code() == grpc::StatusCode::PERMISSION_DENIED || (st.ok() && owner != node);
      if (refused) {
        std::string why = st.ok() ? "the credential now belongs to node '" + owner + "'" : st.error_message();
        log::Warn("config: credential no longer valid; closing the stream", {{"node", node}, {"error", why}});
        result = {grpc::StatusCode::UNAUTHENTICATED, "credential no longer valid: " + why};
        break;
      }
    }
    auto snap = ctx_->store->WaitNewer(base ? base->version : 0, std::chrono::milliseconds(200));
    if (!snap || (base && snap->version == base->version)) continue;
    if (!base && ctx_->full_pushes && !full_slot.held()) {
      // A full snapshot waits for a slot; the loop goes on re-checking the credential and the stream meanwhile.
      full_slot = ctx_->full_pushes->Acquire(std::chrono::milliseconds(200));
      if (!full_slot.held()) continue;
      if (auto newest = ctx_->store->Current()) snap = newest;  // the wait may have been long: send what is current
    }
    auto parts = pushes_.Get(base.get(), *snap, ctx_->store->epoch(), "");
    if (ctx_->metrics) {
      auto published = ctx_->metrics->PublishedAt(snap->version).value_or(opened);
      std::lock_guard<std::mutex> lock(pending_mu);
      pending[snap->version] = std::max(published, opened);
    }
    bool written = true;
    if (hello.accepts_parts() || parts->size() == 1) {
      for (const auto& part : *parts) {
        if (!(written = stream->Write(part))) break;
      }
    } else {
      written = stream->Write(JoinParts(*parts));  // an agent from before parts: one message, as it always got
    }
    if (!written) break;
    if (ctx_->metrics) ctx_->metrics->PushSent();
    ctx_->agents->Sent(node, snap->version);
    base = snap;
    full_slot.Release();
  }
  if (ctx_->stopping) result = {grpc::StatusCode::UNAVAILABLE, "controller shutting down"};
  context->TryCancel();  // unblocks the reader
  reader.join();
  ctx_->agents->StreamClosed(node);
  log::Info("config: agent disconnected", {{"node", node}});
  return result;
}

}  // namespace zm::ctrl
