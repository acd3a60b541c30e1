#include "agent/proxy/hbone_client.h"

#include <unistd.h>

#include <algorithm>

#include "agent/proxy/socket_util.h"
#include "common/log.h"

namespace zm::proxy {
namespace {

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

HboneClient::HboneClient(WorkerContext& ctx, HbonePool* pool, std::string key, int fd, bssl::UniquePtr<SSL> ssl,
                         std::string peer)
    : HboneSession(ctx, fd, std::move(ssl), /*client=*/true, std::move(peer)), pool_(pool), key_(std::move(key)) {}

bool HboneClient::CanTake() const {
  if (draining_ || closed()) return false;
  size_t limit = ctx_.opts.max_streams_per_connection;
  if (h2_) {
    limit = std::min<size_t>(limit, nghttp2_session_get_remote_settings(h2_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
  }
  return stream_count() < limit;
}

void HboneClient::AddStream(int downstream, const sockaddr_in& client, const sockaddr_in& target, ConnRecord rec) {
  HboneStream* s = NewStream();
  s->client = client;
  s->target = target;
  s->track.Open(ctx_.observer(), std::move(rec));
  AddStreamFd(s, downstream);
  ++accepted_;
  if (state_ == State::kReady) {
    Submit(s);
    Flush();
  } else {
    pending_.push_back(s);
  }
}

void HboneClient::Submit(HboneStream* s) {
  std::string authority = AddrToString(s->target);
  std::string forwarded = "for=\"" + IpToString(s->client.sin_addr.s_addr) + "\"";
  nghttp2_nv nva[] = {Nv(":method", "CONNECT"), Nv(":authority", authority), Nv("forwarded", forwarded)};
  nghttp2_data_provider prd = DataProvider(s);
  int32_t id = nghttp2_submit_request(h2_, nullptr, nva, 3, &prd, s);
  if (id < 0) {
    log::Warn("hbone: cannot submit CONNECT", {{"peer", peer_}, {"error", nghttp2_strerror(id)}});
    DestroyStream(s, true);
    return;
  }
  s->id = id;
  ProxyStats::Add(ctx_.stats.hbone_streams_opened);
}

void HboneClient::OnEstablished() {
  ProxyStats::Add(ctx_.stats.hbone_sessions_opened);
  std::vector<HboneStream*> pending;
  pending.swap(pending_);
  for (HboneStream* s : pending) {
    if (streams_.count(s)) Submit(s);
  }
}

void HboneClient::OnRequestOrResponse(HboneStream* s) {
  if (s->status >= 100 && s->status < 200) return;  // interim
  if (s->status == 200) {
    s->established = true;
    Touch(s);  // Settle() starts reading the downstream socket
    return;
  }
  if (s->status == 401 || s->status == 403) ProxyStats::Add(ctx_.stats.denials);
  log::Info("hbone: CONNECT refused", {{"peer", peer_}, {"authority", AddrToString(s->target)}, {"status", s->status}});
  s->track.SetError("CONNECT refused by the destination: HTTP " + std::to_string(s->status));
  s->tcp_error = true;  // reset the downstream connection and cancel the stream
  Touch(s);
}

void HboneClient::StopNewStreams() {
  draining_ = true;
  pool_->Remove(this);
}

void HboneClient::OnSessionClosed(bool /*was_established*/) {
  pending_.clear();
  pool_->Remove(this);
}

// ---------------------------------------------------------------- pool

void HbonePool::Open(int downstream, const sockaddr_in& client, const sockaddr_in& target,
                     const agent::WorkloadTls& src, const tls::SpiffeId& dst_id, const std::string& dst_node,
                     ConnRecord rec) {
  std::string key = src.id.ToString() + "|" + dst_id.ToString() + "|" + dst_node;
  auto& list = by_key_[key];
  for (HboneClient* c : list) {
    if (c->CanTake()) {
      c->AddStream(downstream, client, target, std::move(rec));
      return;
    }
  }
  sockaddr_in dial = MakeAddr(target.sin_addr.s_addr, ctx_.opts.hbone_dial_port);
  std::string error;
  int fd = StartConnect(dial, 0, SourceBind::kNone, &error);
  bssl::UniquePtr<SSL> ssl(fd >= 0 ? SSL_new(src.client_ctx.get()) : nullptr);
  if (!ssl) {
    log::Warn("hbone: cannot open connection", {{"dst", AddrToString(dial)}, {"error", error}});
    ProxyStats::Add(ctx_.stats.upstream_failures);
    if (fd >= 0) close(fd);
    ResetAndClose(downstream);
    ProxyStats::Add(ctx_.stats.connections_closed);
    ConnTracker track;
    track.Open(ctx_.observer(), std::move(rec));
    track.SetError("cannot open HBONE connection to " + AddrToString(dial) + ": " + error);
    track.Close();
    return;
  }
  tls::SetExpectedPeer(ssl.get(), dst_id);
  auto* c = new HboneClient(ctx_, this, key, fd, std::move(ssl), AddrToString(dial));
  list.push_back(c);
  c->AddStream(downstream, client, target, std::move(rec));
}

void HbonePool::Remove(HboneClient* c) {
  auto it = by_key_.find(c->key());
  if (it == by_key_.end()) return;
  auto& v = it->second;
  v.erase(std::remove(v.begin(), v.end(), c), v.end());
  if (v.empty()) by_key_.erase(it);
}

size_t HbonePool::size() const {
  size_t n = 0;
  for (const auto& [k, v] : by_key_) n += v.size();
  return n;
}

}  // namespace zm::proxy
