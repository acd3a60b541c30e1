#include "agent/proxy/http1_conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "agent/proxy/http_filters.h"
#include "agent/proxy/socket_util.h"
#include "agent/traffic/http_match.h"
#include "common/log.h"

namespace zm::proxy {
namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kReadChunk = 16 * 1024;
// Backpressure: stop reading a side while this much of it waits to be written to the other.
constexpr size_t kMaxPending = 1024 * 1024;

uint64_t EndpointKey(const sockaddr_in& a) {
  return (static_cast<uint64_t>(a.sin_addr.s_addr) << 16) | a.sin_port;
}

std::string ErrorResponse(int status, const char* reason) {
  std::string body = std::string(reason) + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size()) +
         "\r\nconnection: close\r\n\r\n" + body;
}

}  // namespace

void Http1Conn::Start(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                      const agent::Service* service, uint16_t port, const sockaddr_in& src, UpstreamOpener open,
                      std::string what) {
  new Http1Conn(ctx, client, std::move(snap), service, port, src, std::move(open), std::move(what));
}

Http1Conn::Http1Conn(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                     const agent::Service* service, uint16_t port, const sockaddr_in& src, UpstreamOpener open,
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
    if (close_when_flushed_) {
      in_.clear();
      return;
    }
    size_t used = 0;
    auto ev = parser_.Feed(in_.data(), in_.size(), &used);
    in_.erase(0, used);
    request_bytes_ += used;
    if (parser_.head_ready() && ev != Http1RequestParser::Event::kError &&
        ev != Http1RequestParser::Event::kHeadTooLarge && !StartRequest()) {
      return;
    }
    if (!parser_.body().empty() && current_ != nullptr) {
      if (chunked_) {
        AppendChunk(parser_.body(), &current_->out);
      } else {
        current_->out.append(parser_.body());
      }
    }
    switch (ev) {
      case Http1RequestParser::Event::kNeedMore:
        break;
      case Http1RequestParser::Event::kEnd:
        if (chunked_ && current_ != nullptr) current_->out.append(kLastChunk);
        request_done_ = true;
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
  traffic::Route route;
  std::string why;
  auto st = traffic::RouteHttpRequest(*ctx_.balancer, *snap_, *service_, port_, rule, &route, &why);
  if (st != traffic::RouteStatus::kOk) {
    ProxyStats::Add(st == traffic::RouteStatus::kOverflow ? ctx_.stats.circuit_breaker_rejections
                                                          : ctx_.stats.service_no_endpoint);
    FailRequest(503, "Service Unavailable", why);
    return false;
  }
  if (ctx_.observer() != nullptr) {
    req_.destination = MakePeer(snap_.get(), route.addr, PrincipalOf(snap_.get(), route.addr.sin_addr.s_addr));
    req_.destination_service = route.service->Key();
  }
  Upstream* u = UpstreamFor(std::move(route), &why);
  if (u == nullptr) {
    FailRequest(503, "Service Unavailable", why);
    return false;
  }
  if (rule != nullptr) ApplyRequestFilters(*rule, matched, &head);
  current_ = u;
  chunked_ = head.chunked;
  request_done_ = false;
  awaiting_response_ = true;
  response_started_ = false;
  keep_alive_ = head.keep_alive;
  // No body follows a response to HEAD, nor a CONNECT's 2xx (the tunnel does).
  response_mods_ = rule != nullptr && !rule->response_headers.empty() ? &rule->response_headers : nullptr;
  framer_.Start(head.method == "HEAD" || head.method == "CONNECT", response_mods_ != nullptr);
  u->out.append(SerializeRequestHead(head));
  return true;
}

Http1Conn::Upstream* Http1Conn::UpstreamFor(traffic::Route route, std::string* why) {
  uint64_t key = EndpointKey(route.addr);
  auto it = upstreams_.find(key);
  if (it != upstreams_.end()) return it->second.get();  // this pick's lease ends here: the pooled stream holds one
  int fd = open_(std::move(route), why);
  if (fd < 0) return nullptr;
  auto u = std::make_unique<Upstream>();
  u->conn = this;
  u->fd = fd;
  u->key = key;
  Upstream* raw = u.get();
  upstreams_[key] = std::move(u);
  ctx_.loop.Add(fd, kEvents, raw);
  return raw;
}

bool Http1Conn::Alive(uint64_t key, const Upstream* u) const {
  if (done_) return false;
  auto it = upstreams_.find(key);
  return it != upstreams_.end() && it->second.get() == u;
}

void Http1Conn::OnUpstream(Upstream* u, uint32_t ev) {
  if (done_) return;
  uint64_t key = u->key;
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
  size_t mark = out_.size();  // what this call adds to out_ is the response's
  auto count = [&] {
    req_.response_bytes += out_.size() - mark;
    mark = out_.size();
  };
  size_t used = 0;
  auto r = framer_.Feed(data, len, &used);
  while (r == Http1ResponseFramer::Result::kHead) {
    // A head to rewrite (ResponseHeaderModifier): its bytes were captured, the rewritten head goes out instead.
    for (const auto& m : *response_mods_) ApplyHeaderModifier(m, &framer_.headers());
    out_.append(SerializeResponseHead(framer_.version_minor(), framer_.status(), framer_.reason(), framer_.headers()));
    response_started_ = true;
    data += used;
    len -= used;
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
  while (!u->out.empty()) {
    ssize_t n = write(u->fd, u->out.data(), u->out.size());
    if (n > 0) {
      u->out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // The stream to the endpoint failed (refused, denied, reset): the request cannot reach it.
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

void Http1Conn::FailRequest(int status, const char* reason, const std::string& why) {
  log::Info("http request failed", {{"conn", what_}, {"status", status}, {"reason", why}});
  if (!req_open_) OpenRequestRecord();  // refused before routing: a malformed or oversized head
  ReportRequest(response_started_ ? 0 : status, why);
  if (response_started_) {
    Finish(/*reset=*/true);  // part of a response went out: a reset is the only honest ending
    return;
  }
  out_ = ErrorResponse(status, reason);
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
    close(u->fd);
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
  if (src_peer_.addr.sin_family == 0) {  // once per connection: the client does not change
    src_peer_ = MakePeer(snap_.get(), src_, PrincipalOf(snap_.get(), src_.sin_addr.s_addr));
    src_peer_.addr.sin_family = AF_INET;
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
  if (!req_open_) return;
  req_open_ = false;
  ConnObserver* obs = ctx_.observer();
  if (obs == nullptr) return;
  req_.status = status;
  req_.error = std::move(error);
  req_.request_bytes = request_bytes_;
  req_.duration = std::chrono::steady_clock::now() - req_start_;
  request_bytes_ = 0;
  obs->OnRequest(req_);
}

}  // namespace zm::proxy
