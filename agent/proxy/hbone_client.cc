#include "agent/proxy/hbone_client.h"

#include <unistd.h>

#include <algorithm>

#include "agent/proxy/forwarded.h"
#include "agent/proxy/h2_nv.h"
#include "agent/proxy/socket_util.h"
#include "common/log.h"

namespace zm::proxy {

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

void HboneClient::AddStream(int downstream, const net::SockAddr& client, const net::SockAddr& target, ConnRecord rec,
                            ServiceConn svc) {
  HboneStream* s = NewStream();
  s->client = client;
  s->target = target;
  s->track.Open(ctx_.observer(), std::move(rec));
  s->svc = std::move(svc);
  AddStreamFd(s, downstream);
  if (s->svc.connect_timeout.count() > 0) {
    // The service's connect timeout covers the whole CONNECT (the remote proxy's connect included).
    s->timer = ctx_.loop.AddTimer(s->svc.connect_timeout, [this, s] {
      s->timer = 0;
      ConnectTimedOut(s);
    });
  }
  ++accepted_;
  if (state_ == State::kReady) {
    Submit(s);
    Flush();
  } else {
    pending_.push_back(s);
  }
}

void HboneClient::Submit(HboneStream* s) {
  std::string authority = s->target.ToString();
  // Like ztunnel: the source pod's address and port, quoted (RFC 7239 requires quotes around "IP:port").
  std::string forwarded = FormatForwardedFor(s->client.ip, s->client.port);
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

void HboneClient::ConnectTimedOut(HboneStream* s) {
  if (!streams_.count(s) || s->established) return;
  ProxyStats::Add(ctx_.stats.upstream_failures);
  s->svc.lease.Failed();
  HandBack(s);
  s->track.SetError("CONNECT to " + s->target.ToString() + " timed out");
  s->tcp_error = true;  // cancel the stream; the downstream is reset unless it was handed back
  Touch(s);
  if (state_ == State::kReady) {
    SettleAll();
    Flush();
  } else {
    pending_.erase(std::remove(pending_.begin(), pending_.end(), s), pending_.end());
    DestroyStream(s, true);
  }
}

void HboneClient::ArmIdle(HboneStream* s) {
  s->timer = ctx_.loop.AddTimer(s->svc.idle_timeout / kIdleChecks, [this, s] {
    s->timer = 0;
    if (!streams_.count(s)) return;
    if (s->active) {
      s->active = false;
      s->quiet_checks = 0;
    } else if (++s->quiet_checks >= kIdleChecks) {
      s->track.SetError("idle timeout");
      s->tcp_error = true;  // reset the downstream, cancel the stream
      Touch(s);
      if (state_ == State::kReady) {
        SettleAll();
        Flush();
      }
      return;
    }
    ArmIdle(s);
  });
}

void HboneClient::OnRequestOrResponse(HboneStream* s) {
  if (s->status >= 100 && s->status < 200) return;  // interim
  if (s->status == 200) {
    ctx_.loop.CancelTimer(s->timer);
    s->timer = 0;
    s->svc.lease.Connected();
    s->svc.retry = nullptr;  // never after this point; also frees the snapshot the retry held
    s->established = true;
    if (s->svc.idle_timeout.count() > 0) ArmIdle(s);
    Touch(s);  // Settle() starts reading the downstream socket
    return;
  }
  if (s->status == 401 || s->status == 403) ProxyStats::Add(ctx_.stats.denials);
  ctx_.loop.CancelTimer(s->timer);
  s->timer = 0;
  if (s->status == 503) {
    // The destination proxy could not connect to the endpoint: an endpoint failure, and retryable.
    s->svc.lease.Failed();
    HandBack(s);
  }
  log::Info("hbone: CONNECT refused", {{"peer", peer_}, {"authority", s->target.ToString()}, {"status", s->status}});
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

std::string HbonePool::Key(const tls::SpiffeId& src, const tls::SpiffeId& dst, const net::SockAddr& dial,
                           const net::IpAddr& source_ip) {
  return src.ToString() + "|" + dst.ToString() + "|" + dial.ToString() + "|" + source_ip.ToString();
}

void HbonePool::Open(int downstream, const net::SockAddr& client, const net::SockAddr& target,
                     const agent::WorkloadTls& src, const tls::SpiffeId& dst_id, ConnRecord rec, ServiceConn svc) {
  net::SockAddr dial = net::SockAddr{target.ip, ctx_.opts.hbone_dial_port};
  bool bind = ctx_.opts.hbone_bind_source && ctx_.opts.source_bind != SourceBind::kNone;
  net::IpAddr source_ip = bind ? client.ip : net::IpAddr();
  std::string key = Key(src.id, dst_id, dial, source_ip);
  auto& list = by_key_[key];
  HboneClient* least = nullptr;
  for (HboneClient* c : list) {
    if (c->CanTake()) {
      c->AddStream(downstream, client, target, std::move(rec), std::move(svc));
      return;
    }
    if (c->Usable() && (least == nullptr || c->stream_count() < least->stream_count())) least = c;
  }
  size_t max_conns = ctx_.opts.max_connections_per_pool;
  if (least != nullptr && max_conns > 0 && list.size() >= max_conns) {
    // Every connection of the pool is full: the stream waits in nghttp2's queue until one of them frees a slot
    // (its HEADERS are held back while the peer's MAX_CONCURRENT_STREAMS is reached).
    ProxyStats::Add(ctx_.stats.hbone_streams_queued);
    log::Debug("hbone: pool full, stream queued", {{"pool", key}, {"connections", list.size()}});
    least->AddStream(downstream, client, target, std::move(rec), std::move(svc));
    return;
  }
  std::string error;
  int fd =
      StartConnect(dial, source_ip, bind ? ctx_.opts.source_bind : SourceBind::kNone, ctx_.opts.socket_mark, &error);
  bssl::UniquePtr<SSL> ssl(fd >= 0 ? SSL_new(src.client_ctx.get()) : nullptr);
  if (!ssl) {
    log::Warn("hbone: cannot open connection", {{"dst", dial.ToString()}, {"error", error}});
    ProxyStats::Add(ctx_.stats.upstream_failures);
    if (fd >= 0) close(fd);
    svc.lease.Failed();
    if (svc.retry && !ctx_.loop.stopping()) {
      ctx_.loop.Post([retry = std::move(svc.retry), downstream] { retry(downstream); });
      return;
    }
    ResetAndClose(downstream);
    ProxyStats::Add(ctx_.stats.connections_closed);
    ConnTracker track;
    track.Open(ctx_.observer(), std::move(rec));
    track.SetError("cannot open HBONE connection to " + dial.ToString() + ": " + error);
    track.Close();
    return;
  }
  tls::SetExpectedPeer(ssl.get(), dst_id);
  auto* c = new HboneClient(ctx_, this, key, fd, std::move(ssl), dial.ToString());
  c->EnableRedial({dial, source_ip, bind ? ctx_.opts.source_bind : SourceBind::kNone});
  list.push_back(c);
  c->AddStream(downstream, client, target, std::move(rec), std::move(svc));
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
