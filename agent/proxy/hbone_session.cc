#include "agent/proxy/hbone_session.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>

#include "agent/proxy/socket_util.h"
#include "agent/proxy/tls_socket_bio.h"
#include "agent/proxy/trace_context.h"
#include "common/log.h"
#include "common/tls/context.h"
#include "common/tls/pem.h"

namespace zm::proxy {
namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kOutCap = 512 * 1024;                          // encrypted-side queue; nghttp2 waits when it is full
constexpr size_t kReadBudget = 1 << 20;                         // TLS bytes per turn before yielding
constexpr auto kConnectAttempt = std::chrono::seconds(1);       // unanswered SYN: dial afresh (the kernel's RTO)
constexpr auto kRefusedRetry = std::chrono::milliseconds(200);  // refused connect: dial again after this
// The payload room of nghttp2's frame buffer from the start (its NGHTTP2_MAX_PAYLOADLEN, RFC 9113's initial size).
constexpr size_t kH2InitialFrameBuffer = 16384;

}  // namespace

// ---------------------------------------------------------------- stream

HboneStream::~HboneStream() {
  loop->Unready(this);
}

void HboneStream::OnIo(uint32_t ev) {
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) tcp_readable = true;
  if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) tcp_hup = true;
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) tcp_writable = true;
  session->OnStreamIo(this);
}

void HboneStream::OnReady() {
  ready_pending = false;
  session->OnStreamIo(this);
}

// ---------------------------------------------------------------- session

HboneSession::HboneSession(WorkerContext& ctx, int fd, bssl::UniquePtr<SSL> ssl, bool client, std::string peer)
    : ctx_(ctx),
      fd_(fd),
      ssl_(std::move(ssl)),
      client_(client),
      peer_(std::move(peer)),
      state_(client ? State::kConnecting : State::kHandshaking),
      out_(&ctx.blocks) {
  ctx_.live.insert(this);
  ctx_.load.fetch_add(1, std::memory_order_relaxed);
  AttachBio();
  if (client_) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
  TuneStream(fd_);
  ctx_.loop.Add(fd_, kEvents, this);
  // Client: connect and handshake within connect_timeout. Server: the handshake within handshake_timeout, so a peer
  // that connects and sends nothing (or trickles a ClientHello) does not hold the descriptor.
  handshake_timer_ = ctx_.loop.AddTimer(client_ ? ctx_.opts.connect_timeout : ctx_.opts.handshake_timeout, [this] {
    handshake_timer_ = 0;
    if (state_ == State::kClosed) return;
    ProxyStats::Add(client_ ? ctx_.stats.upstream_failures : ctx_.stats.hbone_handshake_timeouts);
    if (state_ == State::kHandshaking) ctx_.ReportTlsFailure(TlsFailure::kTimeout);
    Close("connect/handshake timed out");
  });
  last_read_ = EventLoop::Clock::now();
}

HboneSession::~HboneSession() {
  ctx_.loop.Unready(this);
  ctx_.loop.CancelTimer(handshake_timer_);
  ctx_.loop.CancelTimer(header_timer_);
  ctx_.loop.CancelTimer(idle_timer_);
  ctx_.loop.CancelTimer(ping_timer_);
  ctx_.loop.CancelTimer(attempt_timer_);
  ctx_.live.erase(this);
  ctx_.load.fetch_sub(1, std::memory_order_relaxed);
  if (h2_) nghttp2_session_del(h2_);
}

void HboneSession::OnIo(uint32_t ev) {
  if (state_ == State::kClosed) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hup_ = true;
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
  Drive();
}

void HboneSession::Drive() {
  if (state_ == State::kClosed || in_drive_) return;
  in_drive_ = true;
  if (state_ == State::kConnecting && writable_ && !redial_pending_) {
    int err = ConnectResult(fd_);
    if (err != 0 && redial_) {
      // Refused or unreachable: the peer's agent may be restarting. Dial again shortly, within the deadline.
      log::Debug("hbone: connect failed, dialling again", {{"peer", peer_}, {"error", std::strerror(err)}});
      redial_pending_ = true;
      writable_ = false;
      ArmConnectAttempt(kRefusedRetry);
      in_drive_ = false;
      return;
    }
    if (err != 0) {
      ProxyStats::Add(ctx_.stats.upstream_failures);
      in_drive_ = false;
      Close(std::string("connect: ") + std::strerror(err));
      return;
    }
    ctx_.loop.CancelTimer(attempt_timer_);
    attempt_timer_ = 0;
    state_ = State::kHandshaking;
  }
  if (state_ == State::kHandshaking && (readable_ || writable_)) Handshake();
  if (state_ == State::kReady) {
    ReadTls();
    if (state_ == State::kReady) Flush();
  }
  in_drive_ = false;
}

void HboneSession::AttachBio() {
  // SSL_set_fd's socket BIO, reading ahead (tls_socket_bio.h). Without memory for it, the socket BIO: slower, same
  // behaviour (TlsSocketBioDrained is then never asked).
  BIO* bio = NewTlsSocketBio(fd_, &ctx_.buffers);
  if (bio == nullptr) {
    SSL_set_fd(ssl_.get(), fd_);
    read_ahead_ = false;
    return;
  }
  SSL_set_bio(ssl_.get(), bio, bio);
  read_ahead_ = true;
}

void HboneSession::EnableRedial(const Dial& d) {
  dial_ = d;
  redial_ = true;
  if (state_ == State::kConnecting) ArmConnectAttempt(kConnectAttempt);
}

void HboneSession::ArmConnectAttempt(std::chrono::milliseconds after) {
  ctx_.loop.CancelTimer(attempt_timer_);
  attempt_timer_ = ctx_.loop.AddTimer(after, [this] {
    attempt_timer_ = 0;
    if (state_ == State::kConnecting) Redial();
  });
}

void HboneSession::Redial() {
  std::string error;
  int fd = StartConnect(dial_.addr, dial_.source_ip, dial_.bind, ctx_.opts.socket_mark, &error);
  if (fd < 0) {
    ProxyStats::Add(ctx_.stats.upstream_failures);
    Close("connect: " + error);
    return;
  }
  ProxyStats::Add(ctx_.stats.hbone_redials);
  ctx_.loop.Remove(fd_);
  close(fd_);
  fd_ = fd;
  AttachBio();  // nothing was written on the old socket: the handshake starts on this one
  TuneStream(fd_);
  readable_ = writable_ = hup_ = false;
  redial_pending_ = false;
  ctx_.loop.Add(fd_, kEvents, this);
  ArmConnectAttempt(kConnectAttempt);
}

void HboneSession::Handshake() {
  int r = SSL_do_handshake(ssl_.get());
  if (r != 1) {
    int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ) {
      readable_ = false;
      return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      writable_ = false;
      return;
    }
    ProxyStats::Add(ctx_.stats.tls_failures);
    std::string reason = tls::VerifyFailureReason(ssl_.get());
    ctx_.ReportTlsFailure(!reason.empty()        ? TlsFailure::kPeerVerification
                          : err == SSL_ERROR_SSL ? TlsFailure::kProtocol
                                                 : TlsFailure::kConnectionClosed);
    if (reason.empty()) reason = err == SSL_ERROR_SSL ? tls::DrainErrors() : "connection closed during handshake";
    ERR_clear_error();
    log::Warn("hbone handshake failed", {{"peer", peer_}, {"role", client_ ? "client" : "server"}, {"reason", reason}});
    Close("handshake failed: " + reason);
    return;
  }
  if (!tls::NegotiatedH2(ssl_.get())) {
    ProxyStats::Add(ctx_.stats.tls_failures);
    ctx_.ReportTlsFailure(TlsFailure::kNoAlpnH2);
    Close("peer did not negotiate ALPN h2");
    return;
  }
  ctx_.loop.CancelTimer(handshake_timer_);
  handshake_timer_ = 0;
  std::string error;
  if (!CreateH2(&error)) {
    Close(error);
    return;
  }
  state_ = State::kReady;
  StartKeepalive();
  OnEstablished();
}

bool HboneSession::CreateH2(std::string* error) {
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, SendCb);
  nghttp2_session_callbacks_set_send_data_callback(cbs, SendDataCb);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, ReadLengthCb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, FrameRecvCb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, DataChunkCb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, StreamCloseCb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, HeaderCb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, BeginHeadersCb);
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, ctx_.opts.max_streams_per_connection);
  int rv =
      client_ ? nghttp2_session_client_new2(&h2_, cbs, this, opt) : nghttp2_session_server_new2(&h2_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    *error = std::string("nghttp2 session: ") + nghttp2_strerror(rv);
    return false;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ctx_.opts.max_streams_per_connection},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ctx_.opts.stream_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, ctx_.opts.max_frame_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  size_t n = client_ ? 4 : 3;  // ENABLE_PUSH is a client-only setting
  if (nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, settings, n) != 0 ||
      nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<int32_t>(ctx_.opts.connection_window)) != 0) {
    *error = "nghttp2 settings";
    return false;
  }
  return true;
}

void HboneSession::StartKeepalive() {
  auto interval = ctx_.opts.ping_interval;
  ping_timer_ = ctx_.loop.AddTimer(interval, [this, interval] {
    ping_timer_ = 0;
    if (EventLoop::Clock::now() - last_read_ > 3 * interval) {
      Close("keepalive: peer silent");
      return;
    }
    if (client_) {
      nghttp2_submit_ping(h2_, NGHTTP2_FLAG_NONE, nullptr);
      Flush();
    }
    if (state_ == State::kReady) StartKeepalive();
  });
  ArmIdle();
}

void HboneSession::ArmIdle() {
  ctx_.loop.CancelTimer(idle_timer_);
  idle_timer_ = 0;
  if (!streams_.empty() || state_ != State::kReady) return;
  idle_timer_ = ctx_.loop.AddTimer(ctx_.opts.idle_timeout, [this] {
    idle_timer_ = 0;
    if (!streams_.empty()) return;
    StopNewStreams();
    nghttp2_session_terminate_session(h2_, NGHTTP2_NO_ERROR);  // GOAWAY, then close once it is written
    Flush();
  });
}

void HboneSession::ReadTls() {
  size_t budget = kReadBudget;
  // Decrypted bytes on their way to nghttp2, used within this call: room for the records of a whole read-ahead.
  uint8_t* buf = ctx_.buffers.scratch();
  const size_t cap = PageBuffers::kSize;
  if (buf == nullptr) {
    Close("out of memory for the TLS decrypt buffer");
    return;
  }
  while (readable_ && state_ == State::kReady) {
    if (budget == 0) {
      ctx_.loop.MarkReady(this);
      break;
    }
    // Decrypt every record the read-ahead buffer holds before nghttp2 sees them: SSL_read returns one record (16 KiB
    // at most), and a DATA frame the peer sent larger than that would otherwise reach DataChunkCb, and the pod
    // socket, in one send per record. Measured in docs/benchmarks.md ("Bulk path, round 3").
    size_t filled = 0;
    int err = SSL_ERROR_NONE;
    std::string failure;  // taken at once: handing the bytes before it to nghttp2 may use the error queue
    do {
      int n = SSL_read(ssl_.get(), buf + filled, static_cast<int>(cap - filled));
      if (n <= 0) {
        err = SSL_get_error(ssl_.get(), n);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          failure = err == SSL_ERROR_ZERO_RETURN ? "peer closed TLS"
                    : err == SSL_ERROR_SSL       ? "TLS error: " + tls::DrainErrors()
                                                 : "connection lost";
          ERR_clear_error();
        }
        break;
      }
      filled += static_cast<size_t>(n);
    } while (read_ahead_ && filled < cap && MoreTlsBuffered());
    ctx_.buffers.ScratchFilled(filled);
    if (filled > 0) {
      last_read_ = EventLoop::Clock::now();
      budget -= std::min(budget, filled);
      ssize_t rv = nghttp2_session_mem_recv(h2_, buf, filled);
      if (rv < 0) {
        gathered_.clear();
        Close(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv)));
        return;
      }
      SendGathered();  // before SettleAll, which may end a stream's write side once its queue is empty
      SettleAll();
      if (state_ != State::kReady) return;
    }
    if (err == SSL_ERROR_WANT_READ) {
      readable_ = false;
      break;
    }
    if (err == SSL_ERROR_WANT_WRITE) break;  // retried on EPOLLOUT
    if (!failure.empty()) {
      Close(failure);
      return;
    }
    // Drained by a short read and nothing buffered: another SSL_read would only read EAGAIN. New bytes come with a
    // new edge; a FIN or error seen already (hup_) is read to the end instead.
    if (read_ahead_ && !hup_ && !MoreTlsBuffered()) readable_ = false;
  }
}

void HboneSession::SendGathered() {
  if (gathered_.empty()) return;
  // A stream's chunks stay in order (stable sort); streams go one after another. One stream, the usual case, needs
  // no sort (std::stable_sort would allocate its buffer on every read).
  HboneStream* first = gathered_.front().s;
  if (!std::all_of(gathered_.begin(), gathered_.end(), [first](const Chunk& c) { return c.s == first; })) {
    std::stable_sort(gathered_.begin(), gathered_.end(),
                     [](const Chunk& a, const Chunk& b) { return std::less<HboneStream*>()(a.s, b.s); });
  }
  for (size_t i = 0; i < gathered_.size();) {
    size_t j = i + 1;
    while (j < gathered_.size() && gathered_[j].s == gathered_[i].s) ++j;
    SendChunks(gathered_[i].s, &gathered_[i], j - i);
    i = j;
  }
  gathered_.clear();
}

void HboneSession::SendChunks(HboneStream* s, const Chunk* c, size_t n) {
  constexpr size_t kMaxIov = 64;
  size_t k = 0;           // chunks sent whole
  size_t off = 0;         // bytes of chunk k sent
  bool gone = s->fd < 0;  // not expected: no nghttp2 callback detaches the socket
  while (k < n && !gone && s->tcp_writable && !s->tcp_error) {
    iovec iov[kMaxIov];
    size_t m = 0;
    for (size_t x = k; x < n && m < kMaxIov; ++x, ++m) {
      size_t skip = x == k ? off : 0;
      iov[m].iov_base = const_cast<uint8_t*>(c[x].data + skip);
      iov[m].iov_len = c[x].len - skip;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = m;
    ssize_t sent = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        s->tcp_writable = false;
      } else {
        s->tcp_error = true;
      }
      break;
    }
    s->unconsumed += static_cast<size_t>(sent);
    for (size_t left = static_cast<size_t>(sent); left > 0;) {
      size_t rest = c[k].len - off;
      if (left < rest) {
        off += left;
        break;
      }
      left -= rest;
      ++k;
      off = 0;
    }
  }
  for (size_t x = k; x < n; ++x) {
    size_t skip = x == k ? off : 0;
    if (gone || s->tcp_error) {
      conn_credit_ += c[x].len - skip;  // nobody will take it: give the window back
    } else {
      s->to_tcp.Append(c[x].data + skip, c[x].len - skip);
    }
  }
  Touch(s);
}

bool HboneSession::MoreTlsBuffered() const {
  return SSL_has_pending(ssl_.get()) || !TlsSocketBioDrained(SSL_get_rbio(ssl_.get()));
}

void HboneSession::Flush() {
  if (state_ != State::kReady) return;
  for (int round = 0; round < 64; ++round) {
    if (conn_credit_ > 0) {
      nghttp2_session_consume_connection(h2_, conn_credit_);
      conn_credit_ = 0;
    }
    int rv = nghttp2_session_send(h2_);
    if (rv != 0) {
      Close(std::string("HTTP/2 send: ") + nghttp2_strerror(rv));
      return;
    }
    SettleAll();
    if (state_ != State::kReady) return;
    if (!FlushTls()) return;
    bool more = nghttp2_session_want_write(h2_) && out_.empty();
    if (!more && conn_credit_ == 0 && touched_.empty()) break;
  }
  if (out_.empty() && Unsent() == 0 && !nghttp2_session_want_read(h2_) && !nghttp2_session_want_write(h2_)) {
    Close("HTTP/2 session finished");
  }
}

size_t HboneSession::Unsent() const {
  return read_ahead_ ? TlsSocketBioUnsent(SSL_get_wbio(ssl_.get())) : 0;
}

// The records of one flush leave in as few send(2)s as the socket takes (tls_socket_bio.h's cork): ~16 KiB records
// one send each cost a syscall and a TCP push apiece. Returns false when the session was closed.
bool HboneSession::FlushTls() {
  BIO* wbio = read_ahead_ ? SSL_get_wbio(ssl_.get()) : nullptr;
  if (wbio == nullptr) return WriteRecords();
  if (writable_ && TlsSocketBioUnsent(wbio) > 0) {
    bool done = false;
    if (!TlsSocketBioFlush(wbio, &done)) {
      Close(std::string("TLS write: ") + std::strerror(errno));
      return false;
    }
    if (!done) writable_ = false;
  }
  TlsSocketBioCork(wbio, true);
  if (!WriteRecords()) return false;
  if (!TlsSocketBioCork(wbio, false)) {
    Close(std::string("TLS write: ") + std::strerror(errno));
    return false;
  }
  if (TlsSocketBioUnsent(wbio) > 0) writable_ = false;  // the socket is full: EPOLLOUT sends the rest
  return true;
}

bool HboneSession::WriteRecords() {
  while (!out_.empty() && writable_) {
    const uint8_t* p;
    size_t len;
    out_.ReadableHead(&p, &len);
    int n = SSL_write(ssl_.get(), p, static_cast<int>(std::min<size_t>(len, INT_MAX)));
    if (n > 0) {
      out_.Consume(static_cast<size_t>(n));
      continue;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_WRITE) {
      writable_ = false;
      break;
    }
    if (err == SSL_ERROR_WANT_READ) break;
    ERR_clear_error();
    Close("TLS write failed");
    return false;
  }
  return true;
}

void HboneSession::Close(const std::string& why) {
  if (state_ == State::kClosed) return;
  bool established = state_ == State::kReady;
  state_ = State::kClosed;
  if (client_ && !established && !streams_.empty()) {
    // Connections waited on this session and fail with it: say so where operators look.
    log::Info("hbone connection failed", {{"peer", peer_}, {"streams", streams_.size()}, {"reason", why}});
  } else {
    log::Debug("hbone session closed", {{"peer", peer_}, {"role", client_ ? "client" : "server"}, {"reason", why}});
  }
  if (h2_) {
    nghttp2_session_del(h2_);  // no callbacks from here on
    h2_ = nullptr;
  }
  std::vector<HboneStream*> all(streams_.begin(), streams_.end());
  for (HboneStream* s : all) {
    if (!s->established && s->svc.lease) {
      s->svc.lease.Failed();  // the destination node (or the path to it) failed this connect
      HandBack(s);
    }
    s->track.SetError("HBONE connection closed: " + why);
    DestroyStream(s, true);
  }
  touched_.clear();
  ctx_.loop.Remove(fd_);
  close(fd_);
  fd_ = -1;
  OnSessionClosed(established);
  ctx_.loop.DeleteLater(this);
}

// ---------------------------------------------------------------- streams

HboneStream* HboneSession::NewStream() {
  auto* s = new HboneStream(this, &ctx_.loop, &ctx_.blocks);
  streams_.insert(s);
  ctx_.load.fetch_add(1, std::memory_order_relaxed);
  ctx_.loop.CancelTimer(idle_timer_);
  idle_timer_ = 0;
  return s;
}

void HboneSession::AddStreamFd(HboneStream* s, int fd) {
  s->fd = fd;  // tuned already (TuneStream) by whoever accepted or connected it
  s->registered = ctx_.loop.Add(fd, kEvents, s);
}

bool HboneSession::HandBack(HboneStream* s) {
  if (s->established || !s->svc.retry || s->fd < 0 || ctx_.loop.stopping()) return false;
  int down = s->fd;
  ctx_.loop.Remove(down);
  s->fd = -1;
  auto retry = std::move(s->svc.retry);
  s->svc.retry = nullptr;
  s->track.SetError("connect failed (retried on another endpoint)");
  ctx_.loop.Post([retry = std::move(retry), down] { retry(down); });
  return true;
}

void HboneSession::DestroyStream(HboneStream* s, bool reset_tcp) {
  if (!streams_.erase(s)) return;
  ctx_.load.fetch_sub(1, std::memory_order_relaxed);
  // The most specific reason first: the tracker keeps the first error it is given.
  if (s->h2_error != NGHTTP2_NO_ERROR) {
    s->track.SetError(std::string("stream reset: ") + nghttp2_http2_strerror(s->h2_error));
  }
  if (!s->established) s->track.SetError("not established");
  if (reset_tcp) s->track.SetError("reset");
  if (s->fd >= 0) {
    ctx_.loop.Remove(s->fd);
    if (reset_tcp) {
      ResetAndClose(s->fd);
      ProxyStats::Add(ctx_.stats.resets);
    } else {
      close(s->fd);
    }
    s->fd = -1;
  }
  ctx_.loop.CancelTimer(s->timer);
  s->to_h2.Clear();
  s->to_tcp.Clear();
  ProxyStats::Add(ctx_.stats.connections_closed);
  s->track.Close();
  OnStreamDone(s);
  ctx_.loop.DeleteLater(s);
  if (state_ == State::kReady) ArmIdle();
}

void HboneSession::Touch(HboneStream* s) {
  if (!s->touched) {
    s->touched = true;
    touched_.push_back(s);
  }
}

void HboneSession::SettleAll() {
  while (!touched_.empty()) {
    std::vector<HboneStream*> batch;
    batch.swap(touched_);
    for (HboneStream* s : batch) {
      s->touched = false;
      if (streams_.count(s)) Settle(s);
      if (state_ != State::kReady) return;
    }
    // Hand the capacity back: otherwise every event's first Touch() allocates the vector anew.
    if (touched_.empty()) {
      batch.clear();
      touched_.swap(batch);
    }
  }
}

// Applies what the callbacks recorded: credits, half-closes, resets and the end of the stream.
void HboneSession::Settle(HboneStream* s) {
  if (s->tcp_error) {
    if (s->fd >= 0) {
      ctx_.loop.Remove(s->fd);
      ResetAndClose(s->fd);
      ProxyStats::Add(ctx_.stats.resets);
      s->fd = -1;
    }
    if (s->id < 0 || s->h2_closed) {
      DestroyStream(s, true);
      return;
    }
    nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    s->to_tcp.Clear();
    return;  // destroyed when nghttp2 reports the close
  }
  if (s->h2_closed) {
    if (!s->credited_all) {
      s->credited_all = true;
      conn_credit_ += s->unconsumed + s->to_tcp.size();
      s->unconsumed = 0;
    }
    if (s->h2_error != NGHTTP2_NO_ERROR || !s->established) {
      DestroyStream(s, true);
      return;
    }
    WriteTcp(s);
    if (s->tcp_error) {
      DestroyStream(s, true);
      return;
    }
    if (s->to_tcp.empty()) DestroyStream(s, false);  // FIN already written by WriteTcp
    return;
  }
  if (s->unconsumed > 0 && s->id > 0) {
    nghttp2_session_consume(h2_, s->id, s->unconsumed);
    s->unconsumed = 0;
  }
  if (s->h2_eof && s->to_tcp.empty() && !s->tcp_shut && s->fd >= 0 && !s->connecting) {
    shutdown(s->fd, SHUT_WR);
    s->tcp_shut = true;
  }
  if (s->established && s->tcp_readable) ReadTcp(s);  // e.g. right after the 200
}

void HboneSession::OnStreamIo(HboneStream* s) {
  if (state_ == State::kClosed || !streams_.count(s)) return;
  if (s->connecting) {
    if (!s->tcp_writable) return;
    s->connecting = false;
    ctx_.loop.CancelTimer(s->timer);
    s->timer = 0;
    OnUpstreamConnect(s, ConnectResult(s->fd));
    if (state_ == State::kReady) Flush();
    return;
  }
  if (state_ != State::kReady) return;  // client streams wait for the session
  WriteTcp(s);
  ReadTcp(s);
  Touch(s);
  SettleAll();
  Flush();
}

void HboneSession::ReadTcp(HboneStream* s) {
  if (!s->established || s->tcp_eof || s->tcp_error || s->fd < 0 || s->h2_closed) return;
  bool got = false;
  size_t cap = ctx_.opts.stream_read_buffer;
  while (s->tcp_readable && s->to_h2.size() < cap) {
    // One block per read, or while a bulk transfer fills every read, up to 4 blocks (256 KiB) per readv: a quarter
    // of the syscalls, and small messages still take one block.
    iovec iov[4];
    size_t parts =
        s->tcp_bulk ? s->to_h2.WritableTailVec(iov, 4, cap - s->to_h2.size()) : s->to_h2.WritableTailVec(iov, 1, 0);
    size_t len = 0;
    for (size_t i = 0; i < parts; ++i) len += iov[i].iov_len;
    ssize_t n = readv(s->fd, iov, static_cast<int>(parts));
    s->to_h2.CommitVec(n > 0 ? static_cast<size_t>(n) : 0);
    if (n > 0) {
      s->active = true;
      s->tcp_bulk = static_cast<size_t>(n) == len;
      // A short read drained the socket: the next bytes come with a new edge, so no read that only says EAGAIN. A
      // FIN or error reported already (tcp_hup) is read to the end instead.
      if (static_cast<size_t>(n) < len && !s->tcp_hup) s->tcp_readable = false;
      ProxyStats::Add(client_ ? ctx_.stats.bytes_out : ctx_.stats.bytes_in, static_cast<uint64_t>(n));
      if (client_) {
        s->track.AddSent(static_cast<uint64_t>(n));
      } else {
        s->track.AddReceived(static_cast<uint64_t>(n));
      }
      got = true;
    } else if (n == 0) {
      s->tcp_eof = true;
      got = true;
      break;
    } else if (errno == EAGAIN) {
      s->tcp_readable = false;
    } else if (errno != EINTR) {
      s->tcp_error = true;
      Touch(s);
      return;
    }
  }
  // Nothing read (EAGAIN or FIN): the block WritableTail() took goes back to the pool, or an idle stream would keep
  // one; and 1,000 streams closing at once would each take one.
  if (s->to_h2.empty()) s->to_h2.Clear();
  if (got && s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(h2_, s->id);
  }
}

void HboneSession::WriteTcp(HboneStream* s) {
  if (s->fd < 0 || s->tcp_error || s->connecting) return;
  while (!s->to_tcp.empty() && s->tcp_writable) {
    const uint8_t* p;
    size_t len;
    s->to_tcp.ReadableHead(&p, &len);
    ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      s->to_tcp.Consume(static_cast<size_t>(n));
      if (!s->credited_all) s->unconsumed += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      s->tcp_writable = false;
    } else if (n < 0 && errno != EINTR) {
      s->tcp_error = true;
      Touch(s);
      return;
    }
  }
  if (s->h2_eof && s->to_tcp.empty() && !s->tcp_shut) {
    shutdown(s->fd, SHUT_WR);
    s->tcp_shut = true;
  }
}

nghttp2_data_provider HboneSession::DataProvider(HboneStream* s) {
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = DataReadCb;
  return prd;
}

// ---------------------------------------------------------------- nghttp2 callbacks

ssize_t HboneSession::SendCb(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
  auto* self = static_cast<HboneSession*>(user);
  size_t room = self->out_.size() < kOutCap ? kOutCap - self->out_.size() : 0;
  if (room == 0) return NGHTTP2_ERR_WOULDBLOCK;
  size_t n = std::min(room, len);
  self->out_.Append(data, n);
  return static_cast<ssize_t>(n);
}

// Asked before each DATA frame; nghttp2 grows the session's frame buffer to this length and never shrinks it, although
// NO_COPY leaves the payload out of that buffer. Above nghttp2's default 16 KiB only when that much is queued
// contiguously: the frames are the same (DataReadCb sends min(queued head, length)), but a session whose streams only
// ever moved small writes keeps its 16 KiB buffer instead of a 64 KiB one.
ssize_t HboneSession::ReadLengthCb(nghttp2_session* h2, uint8_t, int32_t id, int32_t, int32_t, uint32_t remote_max,
                                   void*) {
  size_t len = std::min<size_t>(remote_max, kBlockSize);
  if (auto* s = static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(h2, id))) {
    const uint8_t* p;
    size_t avail;
    s->to_h2.ReadableHead(&p, &avail);
    len = std::min(len, std::max(avail, kH2InitialFrameBuffer));
  }
  return static_cast<ssize_t>(len);
}

ssize_t HboneSession::DataReadCb(nghttp2_session*, int32_t, uint8_t*, size_t len, uint32_t* flags,
                                 nghttp2_data_source* src, void*) {
  auto* s = static_cast<HboneStream*>(src->ptr);
  const uint8_t* p;
  size_t avail;
  s->to_h2.ReadableHead(&p, &avail);
  if (avail > 0) {
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return static_cast<ssize_t>(std::min(avail, len));
  }
  if (s->tcp_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;  // FIN from TCP becomes END_STREAM
    return 0;
  }
  s->deferred = true;
  return NGHTTP2_ERR_DEFERRED;
}

int HboneSession::SendDataCb(nghttp2_session*, nghttp2_frame* frame, const uint8_t* hd, size_t len,
                             nghttp2_data_source* src, void* user) {
  auto* self = static_cast<HboneSession*>(user);
  auto* s = static_cast<HboneStream*>(src->ptr);
  size_t pad = frame->data.padlen;
  if (self->out_.size() + 9 + len + pad > kOutCap) return NGHTTP2_ERR_WOULDBLOCK;
  self->out_.Append(hd, 9);
  if (pad > 0) {
    uint8_t padlen = static_cast<uint8_t>(pad - 1);
    self->out_.Append(&padlen, 1);
  }
  size_t left = len;
  while (left > 0) {
    const uint8_t* p;
    size_t avail;
    s->to_h2.ReadableHead(&p, &avail);
    size_t k = std::min(avail, left);
    self->out_.Append(p, k);
    s->to_h2.Consume(k);
    left -= k;
  }
  static const uint8_t kZeros[256] = {};
  for (size_t z = pad > 1 ? pad - 1 : 0; z > 0;) {
    size_t k = std::min(z, sizeof(kZeros));
    self->out_.Append(kZeros, k);
    z -= k;
  }
  // Room again in the stream queue: keep reading its socket next turn.
  if (s->tcp_readable && !s->tcp_eof && !s->ready_pending) {
    s->ready_pending = true;
    self->ctx_.loop.MarkReady(s);
  }
  return 0;
}

int HboneSession::FrameRecvCb(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<HboneSession*>(user);
  int32_t id = frame->hd.stream_id;
  auto* s = id > 0 ? static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(h2, id)) : nullptr;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (s && frame->headers.cat != NGHTTP2_HCAT_HEADERS) self->OnRequestOrResponse(s);
      break;
    case NGHTTP2_GOAWAY:
      self->StopNewStreams();
      break;
    default:
      break;
  }
  if (s && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    s->h2_eof = true;
    self->Touch(s);
  }
  return 0;
}

int HboneSession::DataChunkCb(nghttp2_session* h2, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
  auto* self = static_cast<HboneSession*>(user);
  auto* s = static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr || s->tcp_error || s->credited_all || s->fd < 0) {
    self->conn_credit_ += len;  // nobody will take it: give the window back
    return 0;
  }
  ProxyStats::Add(self->client_ ? self->ctx_.stats.bytes_in : self->ctx_.stats.bytes_out, len);
  s->active = true;
  if (self->client_) {
    s->track.AddReceived(len);
  } else {
    s->track.AddSent(len);
  }
  // Straight to the socket when nothing is queued ahead, together with the stream's other chunks of this read
  // (SendGathered: the frames of a bulk transfer leave in one send); only what the socket does not take is copied.
  if (s->to_tcp.empty() && s->tcp_writable && !s->connecting) {
    self->gathered_.push_back({s, data, len});
  } else {
    s->to_tcp.Append(data, len);
  }
  self->Touch(s);
  return 0;
}

int HboneSession::StreamCloseCb(nghttp2_session* h2, int32_t id, uint32_t code, void* user) {
  auto* self = static_cast<HboneSession*>(user);
  auto* s = static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr) return 0;
  s->h2_closed = true;
  s->h2_error = code;
  self->Touch(s);
  return 0;
}

int HboneSession::HeaderCb(nghttp2_session* h2, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                           const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id));
  if (s == nullptr) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    Request& r = static_cast<HboneSession*>(user)->request_;
    if (n == ":method") {
      r.method.assign(v);
    } else if (n == ":authority") {
      r.authority.assign(v);
    } else if (n == "forwarded") {
      // Several header lines form one list (RFC 9110 section 5.3): none may be dropped, the first element counts.
      if (!r.forwarded.empty()) r.forwarded += ", ";
      r.forwarded.append(v);
    } else if (n == "traceparent") {
      // One valid value or none: a repeated or malformed traceparent is dropped, as the spec says to restart the trace.
      r.traceparent = r.traceparent.empty() && ValidTraceparent(v) ? std::string(v) : std::string();
    } else if (n == "baggage") {
      AppendBaggage(&r.baggage, v);
    }
  } else if (n == ":status") {
    int st = 0;
    for (char c : v) st = (c >= '0' && c <= '9' && st < 1000) ? st * 10 + (c - '0') : 1000;
    s->status = st;
  }
  return 0;
}

int HboneSession::BeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<HboneSession*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  for (std::string* f : {&self->request_.method, &self->request_.authority, &self->request_.forwarded,
                         &self->request_.traceparent, &self->request_.baggage}) {
    f->clear();  // keeps the capacity: the next request's headers need no allocation
  }
  return self->OnBeginHeaders(frame->hd.stream_id);
}

}  // namespace zm::proxy
