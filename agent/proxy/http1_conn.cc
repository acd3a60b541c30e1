#include "agent/proxy/http1_conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <utility>

#include "agent/proxy/http_filters.h"
#include "agent/proxy/http_mirror.h"
#include "agent/proxy/http_trace.h"
#include "agent/proxy/socket_util.h"
#include "agent/traffic/http_match.h"
#include "common/log.h"

namespace zm::proxy {
namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kReadChunk = 16 * 1024;
// Backpressure: stop reading a side while this much of it waits to be written to the other.
constexpr size_t kMaxPending = 1024 * 1024;

// A mirror copy nobody waits for still has an end: the rule's request timeout, else this.
constexpr std::chrono::milliseconds kMirrorTimeout{10000};

std::string ErrorResponse(int status, const char* reason, const char* text = nullptr, bool close = true) {
  std::string body = std::string(text != nullptr ? text : reason) + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size()) +
         (close ? "\r\nconnection: close\r\n\r\n" : "\r\n\r\n") + body;
}

}  // namespace

void Http1Conn::Start(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                      const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
                      std::string what) {
  new Http1Conn(ctx, client, std::move(snap), service, port, src, std::move(open), std::move(what));
}

Http1Conn::Http1Conn(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                     const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
                     std::string what)
    : ctx_(ctx),
      client_(client),
      snap_(std::move(snap)),
      service_(service),
      port_(port),
      open_(std::move(open)),
      what_(std::move(what)),
      src_(src) {
  ctx_.live.insert(this);
  client_end_.conn = this;
  TuneStream(client_);
  ctx_.loop.Add(client_, kEvents, &client_end_);
}

Http1Conn::~Http1Conn() {
  EndResilience();  // already done by Finish; timers must never outlive us
  ctx_.live.erase(this);
}

void Http1Conn::ForceClose() {
  Finish(/*reset=*/true);
}

void Http1Conn::Drain() {
  // Finish the exchange in flight, then close instead of waiting for another request.
  draining_ = true;
  if (!awaiting_response_ && request_done_ && !tunnel_) CloseWhenFlushed();
}

void Http1Conn::OnClient(uint32_t ev) {
  if (done_) return;
  if (ev & (EPOLLERR | EPOLLHUP)) {
    Finish(/*reset=*/true);
    return;
  }
  if (ev & EPOLLOUT) {
    client_writable_ = true;
    FlushClient();
    if (done_) return;
    // The client caught up: read on from the upstream that backpressure paused.
    if (current_ != nullptr && out_.empty()) OnUpstream(current_, EPOLLIN);
    if (done_) return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP)) {
    client_readable_ = true;
    ReadClient();
  }
}

void Http1Conn::ReadClient() {
  while (!done_ && client_readable_ && !client_eof_) {
    // Backpressure: what the upstream (or the parser, waiting for the exchange in flight) has not taken yet.
    if (in_.size() >= kMaxPending || (current_ != nullptr && current_->out.size() >= kMaxPending)) return;
    char buf[kReadChunk];
    ssize_t n = read(client_, buf, sizeof(buf));
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      Process();
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      client_readable_ = false;
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    client_eof_ = true;
    if (n < 0) {
      Finish(/*reset=*/true);
      return;
    }
    if (tunnel_ && current_ != nullptr) {
      FlushUpstream(current_);
      if (current_ != nullptr && current_->out.empty()) shutdown(current_->fd, SHUT_WR);
      return;
    }
    // No more requests: finish the exchange in flight, if any, then close.
    if (!awaiting_response_) CloseWhenFlushed();
    return;
  }
}

void Http1Conn::Process() {
  while (!done_ && !in_.empty()) {
    if (tunnel_) {
      if (current_ == nullptr) return;
      current_->out.append(in_);
      in_.clear();
      FlushUpstream(current_);
      return;
    }
    // One exchange at a time: the next request's head waits for the last response.
    if (request_done_ && awaiting_response_) return;
    if (retry_pending_) return;  // backing off: the rest of the body waits here for the next try's upstream
    if (close_when_flushed_) {
      in_.clear();
      return;
    }
    // Between exchanges: what is parsed now is the next request, nothing of its response went out (a malformed
    // head then gets its 400 instead of a reset).
    if (request_done_ && !awaiting_response_) response_started_ = false;
    size_t used = 0;
    auto ev = parser_.Feed(in_.data(), in_.size(), &used);
    in_.erase(0, used);
    request_bytes_ += used;
    if (parser_.head_ready() && ev != Http1RequestParser::Event::kError &&
        ev != Http1RequestParser::Event::kHeadTooLarge && !StartRequest()) {
      return;
    }
    if (!parser_.body().empty() && current_ != nullptr) {
      size_t mark = current_->out.size();
      if (chunked_) {
        AppendChunk(parser_.body(), &current_->out);
      } else {
        current_->out.append(parser_.body());
      }
      if (buffering_) KeepForReplay(std::string_view(current_->out).substr(mark));
    }
    switch (ev) {
      case Http1RequestParser::Event::kNeedMore:
        break;
      case Http1RequestParser::Event::kEnd:
        if (chunked_ && current_ != nullptr) {
          current_->out.append(kLastChunk);
          if (buffering_) KeepForReplay(kLastChunk);
        }
        request_done_ = true;
        if (answered_locally_) request_bytes_ = 0;  // the dropped body of a request already reported
        answered_locally_ = false;
        if (mirror_mask_ != 0) SendMirrors();
        break;
      case Http1RequestParser::Event::kUpgrade:
        request_done_ = true;
        tunnel_ = true;  // the rest of in_ is the tunnel's: the loop's next turn passes it on
        break;
      case Http1RequestParser::Event::kError:
        FailRequest(400, "Bad Request", std::string("malformed request: ") + parser_.error());
        return;
      case Http1RequestParser::Event::kHeadTooLarge:
        FailRequest(431, "Request Header Fields Too Large", "request head over the limit");
        return;
    }
    if (current_ != nullptr) FlushUpstream(current_);
    if (ev == Http1RequestParser::Event::kNeedMore) return;
  }
}

bool Http1Conn::StartRequest() {
  HttpRequestHead& head = parser_.head();
  traffic::HttpRequestView view;
  view.method = head.method;
  view.path = head.Path();
  view.query = head.Query();
  view.headers = &head.headers;
  const agent::HttpRouteMatch* matched = nullptr;
  const agent::HttpRouteRule* rule = traffic::MatchHttpRule(service_->HttpRulesFor(port_), view, &matched);
  OpenRequestRecord();
  if (rule != nullptr) req_.route = rule->key;
  // The rule's ServicePolicy (spec.http): a rate-limit refusal or an injected abort is answered here; a delay holds
  // the request's bytes (the upstream is opened, nothing is written to it) until its timer.
  std::chrono::milliseconds fault_delay{0};
  if (rule != nullptr && (rule->rate_limit.enabled() || rule->fault.enabled())) {
    RoutePolicyVerdict v =
        DecideRoutePolicy(ctx_.limiter ? &ctx_.limiter->routes() : nullptr, *rule, snap_.get(), src_.ip);
    if (v.reply) return LocalReplyNow(v.local);
    fault_delay = v.delay;
    if (fault_delay.count() > 0) {
      req_.fault = "delay";
      req_.fault_policy = rule->fault.policy;
    }
  }
  traffic::Route route;
  std::string why;
  auto st = traffic::RouteHttpRequest(*ctx_.balancer, *snap_, *service_, port_, rule, &route, &why, src_.ip.family());
  if (st != traffic::RouteStatus::kOk) {
    ProxyStats::Add(st == traffic::RouteStatus::kOverflow ? ctx_.stats.circuit_breaker_rejections
                                                          : ctx_.stats.service_no_endpoint);
    FailRequest(503, "Service Unavailable", why);
    return false;
  }
  if (ctx_.observer() != nullptr) {
    req_.destination = MakePeer(snap_.get(), route.addr, PrincipalOf(snap_.get(), route.addr.ip));
    req_.destination_service = route.service->Key();
  }
  rule_ = rule;
  backend_ = route.service;
  backend_port_ = route.service_port;
  tried_.clear();
  attempts_ = 0;
  in_request_ = true;
  ctx_.http.retry_budget.RequestStarted();
  load_ = std::move(route.load);
  Upstream* u = UpstreamFor(std::move(route), &why);
  if (u == nullptr) {
    FailRequest(503, "Service Unavailable", why);
    return false;
  }
  if (rule != nullptr) ApplyRequestFilters(*rule, matched, &head);
  // The CLIENT span: the request goes on as its child (retries and mirrors carry the same traceparent).
  if (ctx_.opts.tracing && req_open_) TraceHttpRequest(&head, snap_->tracing_sampling_ppm(), ctx_.span_ids, &req_);
  chunked_ = head.chunked;
  request_done_ = false;
  awaiting_response_ = true;
  response_started_ = false;
  keep_alive_ = head.keep_alive;
  response_mods_ = rule != nullptr && !rule->response_headers.empty() ? &rule->response_headers : nullptr;
  // No body follows a response to HEAD, nor a CONNECT's 2xx (the tunnel does).
  head_request_ = head.method == "HEAD" || head.method == "CONNECT";
  // The fast path (a rule without retry, none of whose mirrors sampled this request, or no rule): nothing of the
  // request is kept. Mirrors are sampled now (as on HTTP/2), so that a request none of them takes keeps nothing.
  const bool retries = rule != nullptr && rule->retry.attempts > 0 && !head.upgrade;
  mirror_mask_ = 0;
  for (size_t i = 0; rule != nullptr && !head.upgrade && i < rule->mirrors.size() && i < 32; ++i) {
    if (MirrorSampled(rule->mirrors[i].percent, static_cast<uint32_t>(ctx_.http.rng()))) mirror_mask_ |= 1u << i;
  }
  buffering_ = replayable_ = retries || mirror_mask_ != 0;
  // Retries must see a response's status before any of it goes out.
  capture_heads_ = response_mods_ != nullptr || retries;
  std::string wire = SerializeRequestHead(head);
  if (buffering_) replay_head_ = wire;
  if (rule != nullptr && rule->request_timeout.count() > 0) {
    request_timer_ = ctx_.loop.AddTimer(rule->request_timeout, [this] { OnRequestTimeout(); });
  }
  if (fault_delay.count() > 0) hold_timer_ = ctx_.loop.AddTimer(fault_delay, [this] { EndFaultDelay(); });
  StartTry(u, wire);
  return true;
}

void Http1Conn::StartTry(Upstream* u, const std::string& head) {
  ++attempts_;
  tried_.push_back(u->ip);
  current_ = u;
  framer_.Start(head_request_, capture_heads_);
  u->out.append(head);
  u->out.append(replay_body_);  // a retry: the body so far (Process appends the rest as it comes)
  if (rule_ != nullptr && rule_->backend_request_timeout.count() > 0) {
    try_timer_ = ctx_.loop.AddTimer(rule_->backend_request_timeout, [this] { OnTryTimeout(); });
  }
}

Http1Conn::Upstream* Http1Conn::UpstreamFor(traffic::Route route, std::string* why) {
  const net::SockAddr key = route.addr;
  net::IpAddr ip = route.addr.ip;
  auto it = upstreams_.find(key);
  if (it != upstreams_.end()) return it->second.get();  // this pick's lease ends here: the pooled stream holds one
  const auto idle_timeout = route.service->policy.idle_timeout;
  int fd = ctx_.upstreams != nullptr ? ctx_.upstreams->Take(PoolKey(key)) : -1;  // another client's idle stream
  if (fd < 0) {
    fd = open_(std::move(route), why);
    if (fd < 0) return nullptr;
    ProxyStats::Add(ctx_.stats.http_upstream_opened);
  }
  auto u = std::make_unique<Upstream>();
  u->conn = this;
  u->fd = fd;
  u->key = key;
  u->ip = ip;
  u->idle_timeout = idle_timeout;
  Upstream* raw = u.get();
  upstreams_[key] = std::move(u);
  ctx_.loop.Add(fd, kEvents, raw);
  return raw;
}

UpstreamKey Http1Conn::PoolKey(const net::SockAddr& endpoint) {
  if (pool_source_.empty()) {
    pool_source_ = PrincipalOf(snap_.get(), src_.ip) + "@" + src_.ip.ToString();
  }
  return UpstreamKey{pool_source_, endpoint, 1};
}

bool Http1Conn::Alive(const net::SockAddr& key, const Upstream* u) const {
  if (done_) return false;
  auto it = upstreams_.find(key);
  return it != upstreams_.end() && it->second.get() == u;
}

void Http1Conn::OnUpstream(Upstream* u, uint32_t ev) {
  if (done_) return;
  const net::SockAddr key = u->key;
  if (ev & EPOLLOUT) {
    FlushUpstream(u);
    if (!Alive(key, u)) return;
    if (u == current_ && client_readable_) ReadClient();  // resume what backpressure paused
    if (!Alive(key, u)) return;
  }
  if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) return;
  while (Alive(key, u)) {
    if (out_.size() >= kMaxPending) return;  // the client is slow: its EPOLLOUT resumes reading
    char buf[kReadChunk];
    ssize_t n = read(u->fd, buf, sizeof(buf));
    if (n > 0) {
      OnResponseBytes(u, buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    UpstreamClosed(u);
    return;
  }
}

void Http1Conn::OnResponseBytes(Upstream* u, const char* data, size_t len) {
  if (u != current_ || (!awaiting_response_ && !tunnel_)) {
    // Bytes nobody asked for (a server speaking out of turn): this stream cannot be trusted for another request.
    DropUpstream(u);
    return;
  }
  if (tunnel_ && !awaiting_response_) {
    out_.append(data, len);
    FlushClient();
    return;
  }
  // The first bytes of the response: the endpoint's latency sample (EWMA), once per try.
  if (load_.WantsSample()) load_.Observe(traffic::Clock::now());
  size_t mark = out_.size();  // what this call adds to out_ is the response's
  auto count = [&] {
    req_.response_bytes += out_.size() - mark;
    mark = out_.size();
  };
  size_t used = 0;
  auto r = framer_.Feed(data, len, &used);
  while (r == Http1ResponseFramer::Result::kHead) {
    const int status = framer_.status();
    data += used;
    len -= used;
    if (status >= 200 && CanRetry(TryOutcome::kStatus, status)) {
      // A retryable response: none of it goes to the client. When the rest of it is already here it is read to its
      // end and the upstream stays pooled; otherwise (more to come, or our request only half sent) it is closed.
      size_t rest = 0;
      bool whole = framer_.Feed(data, len, &rest) == Http1ResponseFramer::Result::kComplete && rest == len &&
                   framer_.keep_alive() && request_done_ && u->out.empty();
      RetryAfter(u, whole, "response " + std::to_string(status));
      if (!out_.empty()) FlushClient();  // a 100 Continue of this try may have come first
      return;
    }
    // A captured head (ResponseHeaderModifier, or a retry policy that had to see the status) goes out rewritten.
    if (response_mods_ != nullptr) {
      for (const auto& m : *response_mods_) ApplyHeaderModifier(m, &framer_.headers());
    }
    out_.append(SerializeResponseHead(framer_.version_minor(), status, framer_.reason(), framer_.headers()));
    // A 1xx (100 Continue) is interim: the final response has not started, a retry or an error reply may follow.
    response_started_ = response_started_ || status >= 200 || status == 101;
    r = framer_.Feed(data, len, &used);
  }
  if (r == Http1ResponseFramer::Result::kError) {
    log::Info("bad response from upstream", {{"conn", what_}});
    FailRequest(502, "Bad Gateway", "malformed response from upstream");
    return;
  }
  // In a head being captured, the bytes are the framer's until it is complete.
  if (!(r == Http1ResponseFramer::Result::kNeedMore && framer_.in_head())) {
    out_.append(data, used);
    response_started_ = response_started_ || used > 0;
  }
  count();
  if (r == Http1ResponseFramer::Result::kComplete) {
    ReportRequest(framer_.status(), "");
    ResponseDone(u);
    if (done_) return;
    if (used < len) {
      if (tunnel_) {
        out_.append(data + used, len - used);  // 101: what follows is the upgraded protocol
      } else {
        DropUpstream(u);  // more than one response to one request
      }
    }
  }
  FlushClient();
}

void Http1Conn::ResponseDone(Upstream* u) {
  awaiting_response_ = false;
  if (tunnel_) {
    if (framer_.status() != 101 && parser_.head().method != "CONNECT") {
      // The upgrade was declined: the response was final; HTTP/1.1 cannot go back to requests on this connection.
      CloseWhenFlushed();
    } else if (parser_.head().method == "CONNECT" && (framer_.status() < 200 || framer_.status() >= 300)) {
      CloseWhenFlushed();
    }
    return;
  }
  if (!framer_.keep_alive()) DropUpstream(u);
  if (!keep_alive_ || draining_ || client_eof_) {
    CloseWhenFlushed();
    return;
  }
  if (request_done_) {
    current_ = nullptr;
    Process();  // a pipelined request may be waiting
    if (!done_ && client_readable_) ReadClient();
  }
}

void Http1Conn::UpstreamClosed(Upstream* u) {
  if (u == current_ && tunnel_ && !awaiting_response_) {
    CloseWhenFlushed();
    return;
  }
  if (u == current_ && awaiting_response_) {
    if (framer_.Finish() == Http1ResponseFramer::Result::kComplete) {  // a close-delimited response ended
      ReportRequest(framer_.status(), "");
      DropUpstream(u);
      awaiting_response_ = false;
      CloseWhenFlushed();
      return;
    }
    if (CanRetry(TryOutcome::kConnectFailed, 0)) {
      RetryAfter(u, false, "upstream closed before the response");
      return;
    }
    FailRequest(502, "Bad Gateway", "upstream closed before the response ended");
    return;
  }
  DropUpstream(u);  // an idle pooled stream went away; the next request opens another
}

void Http1Conn::DropUpstream(Upstream* u) {
  if (u == current_) current_ = nullptr;
  ctx_.loop.Remove(u->fd);
  close(u->fd);
  auto it = upstreams_.find(u->key);
  // Deleted after this round: its events may already be in the loop's current batch.
  ctx_.loop.DeleteLater(it->second.release());
  upstreams_.erase(it);
}

void Http1Conn::FlushUpstream(Upstream* u) {
  if (hold_timer_ != 0 && u == current_) return;  // an injected delay: the request waits in u->out
  while (!u->out.empty()) {
    ssize_t n = write(u->fd, u->out.data(), u->out.size());
    if (n > 0) {
      u->out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // The stream to the endpoint failed (refused, denied, reset): the request cannot reach it.
    if (u == current_ && awaiting_response_ && CanRetry(TryOutcome::kConnectFailed, 0)) {
      RetryAfter(u, false, "upstream stream failed");
      return;
    }
    FailRequest(502, "Bad Gateway", "upstream stream failed");
    return;
  }
}

void Http1Conn::FlushClient() {
  while (!out_.empty()) {
    ssize_t n = write(client_, out_.data(), out_.size());
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      client_writable_ = false;
      return;
    }
    Finish(/*reset=*/true);
    return;
  }
  if (close_when_flushed_) Finish(/*reset=*/false);
}

void Http1Conn::FailRequest(int status, const char* reason, const std::string& why, const char* body) {
  log::Info("http request failed", {{"conn", what_}, {"status", status}, {"reason", why}});
  if (!req_open_) OpenRequestRecord();  // refused before routing: a malformed or oversized head
  ReportRequest(response_started_ ? 0 : status, why);
  if (response_started_) {
    Finish(/*reset=*/true);  // part of a response went out: a reset is the only honest ending
    return;
  }
  // Appended: the end of an earlier response (or a 100 Continue) may still wait to be written.
  out_.append(ErrorResponse(status, reason, body));
  CloseWhenFlushed();
}

void Http1Conn::CloseWhenFlushed() {
  close_when_flushed_ = true;
  FlushClient();
}

void Http1Conn::Finish(bool reset) {
  if (done_) return;
  ReportRequest(0,
                reset ? "connection reset before the response ended" : "connection closed before the response ended");
  done_ = true;
  for (auto& [key, u] : upstreams_) {
    ctx_.loop.Remove(u->fd);
    // Idle ones ended their last exchange whole (any other is dropped when its exchange fails): another client
    // connection of this source may use them. The one of an unfinished exchange is closed.
    if (ctx_.upstreams != nullptr && u.get() != current_ && u->out.empty() && !draining_) {
      ctx_.upstreams->Put(PoolKey(key), u->fd, u->idle_timeout);
    } else {
      close(u->fd);
    }
    ctx_.loop.DeleteLater(u.release());  // as in DropUpstream
  }
  upstreams_.clear();
  current_ = nullptr;
  ctx_.loop.Remove(client_);
  if (reset) {
    ResetAndClose(client_);
  } else {
    close(client_);
  }
  client_ = -1;
  ProxyStats::Add(ctx_.stats.connections_closed);
  ctx_.loop.DeleteLater(this);
}

void Http1Conn::OpenRequestRecord() {
  ReportRequest(0, "superseded");  // never expected: one exchange at a time
  if (ctx_.observer() == nullptr) return;
  req_ = RequestRecord{};
  req_open_ = true;
  req_start_ = std::chrono::steady_clock::now();
  if (!src_peer_.set) {  // once per connection: the client does not change
    src_peer_ = MakePeer(snap_.get(), src_, PrincipalOf(snap_.get(), src_.ip));
  }
  req_.source = src_peer_;
  if (parser_.head_ready()) {
    const HttpRequestHead& head = parser_.head();
    req_.method = head.method;
    req_.path = head.target;  // before any URLRewrite: what the client asked for
    if (const std::string* tp = head.Header("traceparent")) req_.traceparent = *tp;
  }
}

void Http1Conn::ReportRequest(int status, std::string error) {
  const uint32_t attempts = std::max<uint32_t>(attempts_, 1);
  EndResilience();  // whatever ends a request ends here (a response, a failure, the connection)
  load_.Release();
  if (!req_open_) return;
  req_open_ = false;
  ConnObserver* obs = ctx_.observer();
  if (obs == nullptr) return;
  req_.status = status;
  req_.error = std::move(error);
  req_.request_bytes = request_bytes_;
  req_.attempts = attempts;
  req_.duration = std::chrono::steady_clock::now() - req_start_;
  request_bytes_ = 0;
  if (ctx_.opts.tracing) TraceLocalReply(snap_->tracing_sampling_ppm(), ctx_.span_ids, &req_);  // a local reply's span
  obs->OnRequest(req_);
}

// --- HTTPRoute retries, timeouts and mirrors ---

void Http1Conn::KeepForReplay(std::string_view wire) {
  if (!replayable_) return;
  if (replay_body_.size() + wire.size() > kMaxReplayBody) {
    // Over the bound: this request can no longer be sent again whole, so it is neither retried nor mirrored (the
    // try in flight goes on, streamed as usual). What was kept is freed at once.
    replayable_ = false;
    std::string().swap(replay_head_);
    std::string().swap(replay_body_);
    return;
  }
  replay_body_.append(wire);
}

bool Http1Conn::CanRetry(TryOutcome outcome, int status) {
  if (rule_ == nullptr || !IsRetryable(rule_->retry, outcome, status)) return false;
  // attempts_ counts the first try: retry.attempts retries make 1 + attempts tries.
  if (attempts_ > rule_->retry.attempts || !replayable_ || response_started_ || tunnel_ || done_) return false;
  if (!holds_budget_) {
    if (!ctx_.http.retry_budget.TryAcquire()) {
      ProxyStats::Add(ctx_.stats.http_retry_budget_exhausted);
      return false;
    }
    holds_budget_ = true;
  }
  return true;
}

void Http1Conn::RetryAfter(Upstream* u, bool keep_upstream, const std::string& why) {
  if (try_timer_ != 0) ctx_.loop.CancelTimer(try_timer_);
  try_timer_ = 0;
  // Nothing of this try may leak into a later exchange: only an upstream whose response was read whole stays.
  if (!keep_upstream) DropUpstream(u);
  current_ = nullptr;
  retry_pending_ = true;
  auto delay = ctx_.http.backoff.Next(attempts_, rule_->retry.backoff);
  log::Debug("http request retried", {{"conn", what_},
                                      {"route", rule_->key},
                                      {"reason", why},
                                      {"attempt", attempts_ + 1},
                                      {"backoff_ms", delay.count()}});
  backoff_timer_ = ctx_.loop.AddTimer(delay, [this] {
    backoff_timer_ = 0;
    StartRetry();
  });
}

void Http1Conn::StartRetry() {
  retry_pending_ = false;
  // The backend the split chose stays; another endpoint of it when there is one, else any (the same one again).
  traffic::Route route;
  route.service = backend_;
  route.service_port = backend_port_;
  std::string why;
  auto st = traffic::Reroute(*ctx_.balancer, *snap_, tried_, &route, &why, /*per_request=*/true, src_.ip.family());
  if (st == traffic::RouteStatus::kNoEndpoint) {
    route.service = backend_;
    route.service_port = backend_port_;
    st = traffic::Reroute(*ctx_.balancer, *snap_, {}, &route, &why, /*per_request=*/true, src_.ip.family());
  }
  if (st != traffic::RouteStatus::kOk) {
    FailRequest(503, "Service Unavailable", why + " (retry)");
    return;
  }
  if (ctx_.observer() != nullptr) {
    req_.destination = MakePeer(snap_.get(), route.addr, PrincipalOf(snap_.get(), route.addr.ip));
  }
  load_ = std::move(route.load);
  Upstream* u = UpstreamFor(std::move(route), &why);
  if (u == nullptr) {
    FailRequest(503, "Service Unavailable", why);
    return;
  }
  StartTry(u, replay_head_);
  FlushUpstream(u);  // may fail into another retry
  if (done_ || retry_pending_) return;
  Process();  // the rest of the body, if the client is still sending it
  if (!done_ && client_readable_) ReadClient();
}

void Http1Conn::OnTryTimeout() {
  try_timer_ = 0;
  if (done_ || current_ == nullptr || !awaiting_response_) return;
  load_.Observe(traffic::Clock::now());  // the endpoint was at least this slow
  if (CanRetry(TryOutcome::kTimeout, 0)) {
    RetryAfter(current_, false, "per-try timeout");
    return;
  }
  TimeoutReply("per-try timeout (timeouts.backendRequest " + std::to_string(rule_->backend_request_timeout.count()) +
               " ms)");
}

void Http1Conn::OnRequestTimeout() {
  request_timer_ = 0;
  if (done_ || !awaiting_response_) return;
  load_.Observe(traffic::Clock::now());
  TimeoutReply("request timeout (timeouts.request " + std::to_string(rule_->request_timeout.count()) + " ms)");
}

void Http1Conn::TimeoutReply(const std::string& why) {
  ProxyStats::Add(ctx_.stats.http_timeouts);
  if (response_started_ || !request_done_ || !keep_alive_ || draining_ || client_eof_) {
    // A reset when the response had started; else a 504 and a close (the rest of the request is not read).
    FailRequest(504, "Gateway Timeout", why, "upstream request timeout");
    return;
  }
  // The request was read whole: the connection can carry the next one once the late upstream is gone.
  log::Info("http request failed", {{"conn", what_}, {"status", 504}, {"reason", why}});
  ReportRequest(504, why);
  if (current_ != nullptr) DropUpstream(current_);
  awaiting_response_ = false;
  out_.append(ErrorResponse(504, "Gateway Timeout", "upstream request timeout", /*close=*/false));
  FlushClient();
  if (done_) return;
  Process();  // a pipelined request may be waiting
  if (!done_ && client_readable_) ReadClient();
}

void Http1Conn::SendMirrors() {
  const uint32_t mask = std::exchange(mirror_mask_, 0);
  for (size_t i = 0; i < rule_->mirrors.size() && i < 32; ++i) {
    if (!(mask & (1u << i))) continue;  // not sampled for this request (StartRequest)
    const agent::HttpRequestMirror& m = rule_->mirrors[i];
    traffic::Route route;
    std::string why;
    int fd = -1;
    if (replayable_ && HttpMirror::InFlight(ctx_) < HttpMirror::kMaxInFlight &&
        traffic::RouteToBackend(*ctx_.balancer, *snap_, m.backend, &route, &why, src_.ip.family()) ==
            traffic::RouteStatus::kOk) {
      fd = open_(std::move(route), &why);
    }
    if (fd < 0) {
      ProxyStats::Add(ctx_.stats.http_mirror_dropped);
      continue;
    }
    // The head as the primary got it, marked as a shadow copy, and closed by the mirror backend after its answer.
    HttpRequestHead head = parser_.head();
    for (auto& [name, value] : head.headers) {
      if (name == "host") value = ShadowHost(value);
    }
    std::erase_if(head.headers, [](const auto& kv) { return kv.first == "connection" || kv.first == "keep-alive"; });
    head.headers.emplace_back("connection", "close");
    std::string copy = SerializeRequestHead(head);
    copy.append(replay_body_);
    auto timeout = rule_->request_timeout.count() > 0 ? rule_->request_timeout : kMirrorTimeout;
    ProxyStats::Add(HttpMirror::Start(ctx_, fd, std::move(copy), timeout) ? ctx_.stats.http_mirrored
                                                                          : ctx_.stats.http_mirror_dropped);
  }
}

bool Http1Conn::LocalReplyNow(const LocalReply& reply) {
  const HttpRequestHead& head = parser_.head();
  // Keep-alive goes on when the client allows it: the request's body, if any, is parsed and dropped (no upstream).
  // An upgrade, or a client waiting for 100 Continue (it may never send the body), is closed after the answer.
  const bool close = !head.keep_alive || head.upgrade || draining_ || client_eof_ || head.Header("expect") != nullptr;
  req_.fault = reply.fault;
  req_.fault_policy = reply.policy;
  log::Debug("http request answered by route policy",
             {{"conn", what_}, {"status", reply.status}, {"fault", reply.fault}, {"policy", reply.policy}});
  ReportRequest(reply.status, "");
  out_.append(SerializeLocalReply(reply, head.method, close));
  current_ = nullptr;
  awaiting_response_ = false;
  request_done_ = false;  // the parser's kEnd ends it
  answered_locally_ = true;
  response_started_ = true;  // a malformed body now ends in a reset, not a second response
  if (close) {
    CloseWhenFlushed();
    return false;
  }
  FlushClient();
  return !done_;
}

void Http1Conn::EndFaultDelay() {
  hold_timer_ = 0;
  if (done_ || current_ == nullptr) return;
  load_.RestartClock(traffic::Clock::now());
  FlushUpstream(current_);
  if (!done_ && client_readable_) ReadClient();  // resume what backpressure paused while the request was held
}

void Http1Conn::EndResilience() {
  if (hold_timer_ != 0) ctx_.loop.CancelTimer(hold_timer_);
  hold_timer_ = 0;
  if (request_timer_ != 0) ctx_.loop.CancelTimer(request_timer_);
  if (try_timer_ != 0) ctx_.loop.CancelTimer(try_timer_);
  if (backoff_timer_ != 0) ctx_.loop.CancelTimer(backoff_timer_);
  request_timer_ = try_timer_ = backoff_timer_ = 0;
  retry_pending_ = false;
  if (holds_budget_) ctx_.http.retry_budget.Release();
  if (in_request_) ctx_.http.retry_budget.RequestEnded();
  holds_budget_ = in_request_ = false;
  // Sampled copies of a request that never completed are not sent.
  ProxyStats::Add(ctx_.stats.http_mirror_dropped, static_cast<uint64_t>(std::popcount(mirror_mask_)));
  mirror_mask_ = 0;
  attempts_ = 0;
  if (buffering_) {
    buffering_ = replayable_ = false;
    std::string().swap(replay_head_);
    std::string().swap(replay_body_);
  }
  rule_ = nullptr;
}

}  // namespace zm::proxy
