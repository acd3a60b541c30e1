#include "agent/proxy/inbound_http.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/proxy/http_trace.h"
#include "agent/proxy/policy_path.h"
#include "agent/proxy/route_policy_gate.h"
#include "agent/proxy/socket_util.h"
#include "common/log.h"

namespace zm::proxy {
namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxPending = 1024 * 1024;  // backpressure, as Http1Conn
constexpr size_t kMaxReasonInBody = 1024;

std::string PlainResponse(int status, const char* reason, const std::string& body, bool close,
                          const std::string& denied_by = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                    "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size() + 1) + "\r\n";
  if (!denied_by.empty()) out += "x-zeromesh-denied: " + denied_by + "\r\n";
  out += close ? "connection: close\r\n\r\n" : "\r\n";
  return out + body + "\n";
}

}  // namespace

void InboundHttp::Start(WorkerContext& ctx, int down, int up, bool up_connecting, Params p) {
  new InboundHttp(ctx, down, up, up_connecting, std::move(p));
}

InboundHttp::InboundHttp(WorkerContext& ctx, int down, int up, bool up_connecting, Params p)
    : ctx_(ctx), p_(std::move(p)), down_(down), up_(up), up_connecting_(up_connecting), sniffing_(!p_.enforce) {
  ctx_.live.insert(this);
  down_end_.conn = up_end_.conn = this;
  up_end_.up = true;
  if (ctx_.observer() != nullptr) {
    destination_service_ = HttpServiceOf(*p_.snap, p_.dst);
    src_peer_ = MakePeer(p_.snap.get(), p_.src, p_.has_source_id ? p_.source_id.ToString() : std::string());
    dst_peer_ = MakePeer(p_.snap.get(), p_.dst, p_.snap->IdentityOf(*p_.destination).ToString());
    if (p_.conn.flow[0] != '\0') track_.Open(ctx_.observer(), std::move(p_.conn));
  }
  TuneStream(down_);
  TuneStream(up_);
  ctx_.loop.Add(down_, kEvents, &down_end_);
  ctx_.loop.Add(up_, kEvents, &up_end_);
  if (!p_.preread.empty()) {  // handed on by H2Conn's sniffing: these bytes come first, the rest may be waiting
    track_.AddSent(p_.preread.size());
    if (sniffing_) sniffed_ = p_.preread;
    in_ = std::move(p_.preread);
    p_.preread = std::string();
    Process();
    down_readable_ = true;
    ReadDown();
  }
}

InboundHttp::~InboundHttp() {
  ctx_.live.erase(this);
}

void InboundHttp::ForceClose() {
  Finish(/*reset=*/true);
}

void InboundHttp::Drain() {
  draining_ = true;
  if (!awaiting_response_ && request_done_ && !tunnel_) CloseWhenFlushed();
}

// ------------------------------------------------------------------------------------------------ client side

void InboundHttp::OnDown(uint32_t ev) {
  if (done_) return;
  // A hang-up before this side half-closed: the client is gone both ways (a reset, or the HBONE stream closed our
  // socketpair on one), so the pod is reset too. After our half-close it is the client's FIN: read to the end.
  if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && !down_shut_)) {
    Finish(/*reset=*/true);
    return;
  }
  if (ev & EPOLLHUP) ev |= EPOLLIN | EPOLLOUT;
  if (ev & EPOLLOUT) {
    down_writable_ = true;
    FlushDown();
    if (done_) return;
    if (out_.empty()) ReadUp();  // the client caught up: read on from the pod
    if (done_) return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP)) {
    down_readable_ = true;
    ReadDown();
  }
}

void InboundHttp::ReadDown() {
  while (!done_ && down_readable_ && !down_eof_) {
    if (in_.size() >= kMaxPending || up_out_.size() >= kMaxPending) return;
    char buf[kReadChunk];
    ssize_t n = read(down_, buf, sizeof(buf));
    if (n > 0) {
      track_.AddSent(static_cast<uint64_t>(n));
      if (sniffing_) sniffed_.append(buf, static_cast<size_t>(n));
      in_.append(buf, static_cast<size_t>(n));
      Process();
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      down_readable_ = false;
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    down_eof_ = true;
    if (n < 0) {
      Finish(/*reset=*/true);
      return;
    }
    // No request head: the pod gets the bytes and the FIN, and may still answer (a client that sent nothing is
    // relayed too but is no protocol fallback).
    if (sniffing_) FallBack("the client ended before a request head", /*count=*/!sniffed_.empty());
    if (tunnel_) {
      FlushUp();
      PassFins();
      return;
    }
    if (!awaiting_response_) CloseWhenFlushed();  // no more requests; finish the one in flight first
    return;
  }
}

void InboundHttp::Process() {
  while (!done_ && !in_.empty()) {
    if (tunnel_) {
      up_out_.append(in_);
      in_.clear();
      FlushUp();
      return;
    }
    if (request_done_ && awaiting_response_) return;  // one exchange at a time
    if (close_when_flushed_) {
      in_.clear();
      return;
    }
    size_t used = 0;
    auto ev = parser_.Feed(in_.data(), in_.size(), &used);
    if (sniffing_ && !parser_.head_ready() &&
        (ev == Http1RequestParser::Event::kError || ev == Http1RequestParser::Event::kHeadTooLarge)) {
      FallBack(ev == Http1RequestParser::Event::kError ? parser_.error() : "request head over the limit");
      return;
    }
    if (sniffing_ && parser_.head_ready()) {  // HTTP/1.1 for good: from here on bytes are parsed, never passed as is
      sniffing_ = false;
      sniffed_ = std::string();
    }
    in_.erase(0, used);
    request_bytes_ += used;
    if (parser_.head_ready() && ev != Http1RequestParser::Event::kError &&
        ev != Http1RequestParser::Event::kHeadTooLarge && !StartRequest()) {
      return;
    }
    if (!parser_.body().empty() && !denied_) {
      if (chunked_) {
        AppendChunk(parser_.body(), &up_out_);
      } else {
        up_out_.append(parser_.body());
      }
    }
    switch (ev) {
      case Http1RequestParser::Event::kNeedMore:
        break;
      case Http1RequestParser::Event::kEnd:
        if (chunked_ && !denied_) up_out_.append(kLastChunk);
        RequestEnded();
        break;
      case Http1RequestParser::Event::kUpgrade:
        if (denied_) {  // what follows is the refused protocol's: nothing more can be read as HTTP
          RequestEnded();
          CloseWhenFlushed();
          return;
        }
        request_done_ = true;
        tunnel_ = true;
        break;
      case Http1RequestParser::Event::kError:
        Fail(400, "Bad Request", std::string("malformed request: ") + parser_.error());
        return;
      case Http1RequestParser::Event::kHeadTooLarge:
        Fail(431, "Request Header Fields Too Large", "request head over the limit");
        return;
    }
    if (done_) return;
    FlushUp();
    if (ev == Http1RequestParser::Event::kNeedMore) return;
  }
}

bool InboundHttp::StartRequest() {
  HttpRequestHead& head = parser_.head();
  OpenRecord();
  std::string path, why;
  if (!NormalizePolicyPath(head.target, &path, &why)) {
    Fail(400, "Bad Request", why);
    return false;
  }
  // The pod gets the path that was authorized (Istio forwards the normalized path too).
  if (head.target.starts_with("/") && head.Path() != path) {
    std::string query(head.Query());
    head.target = query.empty() && head.target.find('?') == std::string::npos ? path : path + "?" + query;
  }
  HttpRequestAttrs attrs{head.method, path, &head.headers};
  if (ctx_.opts.authorize) {
    AuthzRequest req{p_.has_source_id ? &p_.source_id : nullptr, p_.src.ip, p_.destination, p_.dst.port, &attrs};
    AuthzDecision d = ctx_.opts.authorize(req);
    if (!d.allow) {
      Deny(d);
      return true;
    }
  }
  // The Service's spec.http.rateLimit, after the authorization (a denied request takes no token).
  LocalReply limited;
  if (DestinationRateLimited(ctx_.limiter ? &ctx_.limiter->routes() : nullptr, *p_.snap, p_.dst,
                             p_.has_source_id ? &p_.source_id : nullptr, p_.src.ip, &limited)) {
    RateLimited(limited);
    return true;
  }
  chunked_ = head.chunked;
  request_done_ = false;
  awaiting_response_ = true;
  response_started_ = false;
  keep_alive_ = head.keep_alive;
  framer_.Start(head.method == "HEAD" || head.method == "CONNECT");
  // The SERVER span, child of the source proxy's CLIENT span (the traceparent is telemetry, never policy); the pod's
  // own spans nest under it.
  if (ctx_.opts.tracing && req_open_) TraceHttpRequest(&head, p_.snap->tracing_sampling_ppm(), ctx_.span_ids, &req_);
  up_out_.append(SerializeRequestHead(head));
  return true;
}

void InboundHttp::Deny(const AuthzDecision& d) {
  ProxyStats::Add(ctx_.stats.denials);
  log::Info("http request denied", {{"conn", p_.what},
                                    {"method", parser_.head().method},
                                    {"path", parser_.head().target.substr(0, 256)},
                                    {"reason", d.reason}});
  Refuse(403);
  std::string body = d.reason.substr(0, kMaxReasonInBody);
  size_t mark = out_.size();
  out_ += PlainResponse(403, "Forbidden", body, !keep_alive_, d.policy.empty() ? "unknown" : d.policy);
  req_.response_bytes = out_.size() - mark;
  req_.policy = d.policy.empty() ? "unknown" : d.policy;
  req_.error = d.reason;
  FlushDown();
}

void InboundHttp::RateLimited(const LocalReply& reply) {
  log::Debug("http request rate limited", {{"conn", p_.what}, {"policy", reply.policy}});
  Refuse(reply.status);
  size_t mark = out_.size();
  out_ += SerializeLocalReply(reply, parser_.head().method, !keep_alive_);
  req_.response_bytes = out_.size() - mark;
  req_.fault = reply.fault;
  req_.fault_policy = reply.policy;
  FlushDown();
}

void InboundHttp::Refuse(int status) {
  denied_ = true;
  refused_status_ = status;
  request_done_ = false;
  awaiting_response_ = false;
  response_started_ = false;  // the refusal is whole: a later failure may still be answered
  // A client waiting for 100 Continue may send the body or not: the next bytes cannot be told apart, so close.
  keep_alive_ = parser_.head().keep_alive && !parser_.head().upgrade && parser_.head().Header("expect") == nullptr;
}

void InboundHttp::RequestEnded() {
  request_done_ = true;
  if (!denied_) return;
  denied_ = false;
  Report(refused_status_, req_.error, req_.policy);
  if (!keep_alive_ || draining_ || down_eof_) CloseWhenFlushed();
}

// ------------------------------------------------------------------------------------------------ pod side

void InboundHttp::OnUp(uint32_t ev) {
  if (done_) return;
  if (up_connecting_) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    up_connecting_ = false;
    if (int err = ConnectResult(up_); err != 0) {
      ProxyStats::Add(ctx_.stats.upstream_failures);
      track_.SetError(std::string("upstream ") + p_.dst.ToString() + ": " + std::strerror(err));
      if (awaiting_response_) {
        Fail(503, "Service Unavailable", std::string("upstream: ") + std::strerror(err));
      } else {
        Finish(/*reset=*/true);
      }
      return;
    }
  }
  if (ev & EPOLLOUT) {
    up_writable_ = true;
    FlushUp();
    if (done_) return;
    if (down_readable_) ReadDown();  // resume what backpressure paused
    if (done_) return;
    PassFins();
    if (done_) return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) ReadUp();
}

void InboundHttp::ReadUp() {
  while (!done_ && !up_connecting_ && !up_eof_) {
    if (out_.size() >= kMaxPending) return;  // the client is slow: its EPOLLOUT resumes reading
    char buf[kReadChunk];
    ssize_t n = read(up_, buf, sizeof(buf));
    if (n > 0) {
      track_.AddReceived(static_cast<uint64_t>(n));
      OnResponseBytes(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0 && (sniffing_ || (tunnel_ && !awaiting_response_))) {
      Finish(/*reset=*/true);  // a byte stream: the pod's reset reaches the client as one
      return;
    }
    up_eof_ = true;
    UpClosed();
    return;
  }
}

void InboundHttp::OnResponseBytes(const char* data, size_t len) {
  if (tunnel_ && !awaiting_response_) {
    out_.append(data, len);
    FlushDown();
    return;
  }
  if (!awaiting_response_ && sniffing_) {
    FallBack("the pod spoke first");  // a server-speaks-first protocol
    if (done_) return;
    out_.append(data, len);
    FlushDown();
    return;
  }
  if (!awaiting_response_) {
    // The pod spoke out of turn: nothing it sends can be matched to a request any more.
    log::Info("unsolicited bytes from the pod", {{"conn", p_.what}});
    Finish(/*reset=*/true);
    return;
  }
  size_t used = 0;
  auto r = framer_.Feed(data, len, &used);
  if (r == Http1ResponseFramer::Result::kError) {
    Fail(502, "Bad Gateway", "malformed response from the pod");
    return;
  }
  out_.append(data, used);
  req_.response_bytes += used;
  response_started_ = response_started_ || used > 0;
  if (r == Http1ResponseFramer::Result::kComplete) {
    Report(framer_.status(), "");
    ResponseDone();
    if (done_) return;
    if (used < len) {
      if (tunnel_) {
        out_.append(data + used, len - used);  // 101: the upgraded protocol follows
      } else {
        log::Info("more than one response to one request", {{"conn", p_.what}});
        CloseWhenFlushed();
      }
    }
  }
  FlushDown();
}

void InboundHttp::ResponseDone() {
  awaiting_response_ = false;
  if (tunnel_) {
    const bool connect = parser_.head().method == "CONNECT";
    if ((!connect && framer_.status() != 101) || (connect && (framer_.status() < 200 || framer_.status() >= 300))) {
      CloseWhenFlushed();  // a declined upgrade: HTTP/1.1 cannot go back to requests on this connection
    }
    return;
  }
  response_started_ = false;  // that response is whole: a failure of the next request can still be answered
  // One pod connection per client connection: when the pod will close it, so does this one (the source reconnects).
  // A client that half-closed after pipelined requests still gets each response: close once none is left.
  if (!framer_.keep_alive() || !keep_alive_ || draining_ || (down_eof_ && in_.empty())) {
    CloseWhenFlushed();
    return;
  }
  if (request_done_) {
    Process();  // a pipelined request may be waiting
    if (done_) return;
    if (down_eof_ && !awaiting_response_) {  // the client ended inside a request: nothing more can come
      CloseWhenFlushed();
      return;
    }
    if (down_readable_) ReadDown();
  }
}

void InboundHttp::UpClosed() {
  // Before any request the pod's FIN is its first word, as a banner would be: relay it, the client may still send.
  if (sniffing_) FallBack("the pod ended before a request");
  if (done_) return;
  if (tunnel_ && !awaiting_response_) {
    PassFins();  // the client gets what is buffered, then the FIN; it may go on sending
    return;
  }
  if (awaiting_response_) {
    if (framer_.Finish() == Http1ResponseFramer::Result::kComplete) {  // a close-delimited response ended
      Report(framer_.status(), "");
      awaiting_response_ = false;
      CloseWhenFlushed();
      return;
    }
    Fail(502, "Bad Gateway", "the pod closed before the response ended");
    return;
  }
  CloseWhenFlushed();  // idle: no pod to send another request to
}

// ------------------------------------------------------------------------------------------------ plumbing

void InboundHttp::FlushUp() {
  if (done_ || up_connecting_) return;
  while (!up_out_.empty()) {
    ssize_t n = send(up_, up_out_.data(), up_out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      up_out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      up_writable_ = false;
      return;
    }
    if (tunnel_ && !awaiting_response_) {
      Finish(/*reset=*/true);  // a byte stream has no status line to say it with
    } else {
      Fail(502, "Bad Gateway", "writing to the pod failed");
    }
    return;
  }
}

void InboundHttp::FlushDown() {
  if (done_) return;
  while (!out_.empty()) {
    ssize_t n = send(down_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      down_writable_ = false;
      return;
    }
    Finish(/*reset=*/true);
    return;
  }
  if (tunnel_) PassFins();
  if (close_when_flushed_) Finish(/*reset=*/false);
}

void InboundHttp::Fail(int status, const char* reason, const std::string& why) {
  log::Info("http request failed at the destination", {{"conn", p_.what}, {"status", status}, {"reason", why}});
  if (!req_open_) OpenRecord();
  Report(response_started_ ? 0 : status, why);
  if (response_started_) {
    Finish(/*reset=*/true);
    return;
  }
  out_ += PlainResponse(status, reason, reason, /*close=*/true);  // after a 403 still queued, if any
  CloseWhenFlushed();
}

void InboundHttp::FallBack(const char* why, bool count) {
  if (count) ProxyStats::Add(ctx_.stats.destination_protocol_fallbacks);
  log::Debug("not HTTP/1.1: relaying bytes", {{"conn", p_.what}, {"reason", why}});
  sniffing_ = false;
  tunnel_ = true;
  in_.clear();  // sniffed_ holds these and the ones parsed before, in order; nothing went to the pod yet
  up_out_ = std::move(sniffed_);
  sniffed_ = std::string();
  request_bytes_ = 0;
  FlushUp();
}

void InboundHttp::PassFins() {
  if (done_ || !tunnel_) return;
  if (down_eof_ && !up_shut_ && up_out_.empty() && !up_connecting_) {
    shutdown(up_, SHUT_WR);
    up_shut_ = true;
  }
  if (up_eof_ && !awaiting_response_ && !down_shut_ && out_.empty()) {
    shutdown(down_, SHUT_WR);
    down_shut_ = true;
  }
  if (up_shut_ && down_shut_) Finish(/*reset=*/false);
}

void InboundHttp::CloseWhenFlushed() {
  close_when_flushed_ = true;
  FlushDown();
}

void InboundHttp::Finish(bool reset) {
  if (done_) return;
  Report(0, reset ? "connection reset before the response ended" : "connection closed before the response ended");
  done_ = true;
  // An error tears down both sides with RST (as SpliceRelay), so neither peer mistakes it for a clean end.
  ctx_.loop.Remove(up_);
  if (reset) {
    ResetAndClose(up_);
  } else {
    close(up_);
  }
  up_ = -1;
  ctx_.loop.Remove(down_);
  if (reset) {
    ResetAndClose(down_);
    track_.SetError("reset");
  } else {
    close(down_);
  }
  down_ = -1;
  if (track_.active()) {
    ProxyStats::Add(ctx_.stats.connections_closed);
    track_.Close();
  }
  ctx_.loop.DeleteLater(this);
}

void InboundHttp::OpenRecord() {
  Report(0, "superseded");  // never expected: one exchange at a time
  if (ctx_.observer() == nullptr) return;
  req_ = RequestRecord{};
  req_open_ = true;
  req_start_ = std::chrono::steady_clock::now();
  req_.reporter = Reporter::kDestination;
  req_.source = src_peer_;
  req_.destination = dst_peer_;
  req_.destination_service = destination_service_;
  if (parser_.head_ready()) {
    const HttpRequestHead& head = parser_.head();
    req_.method = head.method;
    req_.path = head.target;
    if (const std::string* tp = head.Header("traceparent")) req_.traceparent = *tp;
  }
}

void InboundHttp::Report(int status, std::string error, std::string policy) {
  if (!req_open_) return;
  req_open_ = false;
  ConnObserver* obs = ctx_.observer();
  if (obs == nullptr) return;
  req_.status = status;
  req_.error = std::move(error);
  req_.policy = std::move(policy);
  req_.request_bytes = request_bytes_;
  req_.duration = std::chrono::steady_clock::now() - req_start_;
  request_bytes_ = 0;
  if (ctx_.opts.tracing) TraceLocalReply(p_.snap->tracing_sampling_ppm(), ctx_.span_ids, &req_);  // a refusal's span
  obs->OnRequest(req_);
}

}  // namespace zm::proxy
