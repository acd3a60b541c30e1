#include "agent/proxy/h2_conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "agent/proxy/destination_l7.h"
#include "agent/proxy/h2_mirror.h"
#include "agent/proxy/h2_nv.h"
#include "agent/proxy/http1_codec.h"
#include "agent/proxy/http_filters.h"
#include "agent/proxy/http_mirror.h"
#include "agent/proxy/http_trace.h"
#include "agent/proxy/policy_path.h"
#include "agent/proxy/socket_util.h"
#include "agent/proxy/splice_relay.h"
#include "agent/traffic/grpc_match.h"
#include "agent/traffic/http_match.h"
#include "common/log.h"
#include "common/percent_encode.h"

namespace zm::proxy {
namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
// Per stream and per session: what one side may send before the other side took it (the buffering bound).
constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 4 << 20;
constexpr uint32_t kMaxStreams = 256;
constexpr char kGrpcUnavailable[] = "14";
constexpr uint32_t kGrpcPermissionDenied = 7;
constexpr uint32_t kGrpcInternal = 13;
constexpr size_t kMaxReasonInBody = 1024;
// A mirror copy nobody waits for still has an end: the rule's request timeout, else this (as HTTP/1.1's).
constexpr std::chrono::milliseconds kMirrorTimeout{10000};

// grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself (gRPC over HTTP/2 spec).
std::string GrpcPercentEncode(std::string_view in) {
  return PercentEncode(in, [](unsigned char c) { return c >= 0x20 && c <= 0x7e; });
}

std::vector<nghttp2_nv> Nvs(const std::vector<std::pair<std::string, std::string>>& h) {
  std::vector<nghttp2_nv> out;
  out.reserve(h.size());
  for (const auto& [n, v] : h) out.push_back(Nv(n, v));
  return out;
}

const std::string* Find(const std::vector<std::pair<std::string, std::string>>& h, std::string_view name) {
  for (const auto& [n, v] : h) {
    if (n == name) return &v;
  }
  return nullptr;
}

bool Settings(nghttp2_session* h2, bool server) {
  nghttp2_settings_entry s[] = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxStreams},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  return nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, s, server ? 2 : 3) == 0 &&
         nghttp2_session_set_local_window_size(h2, NGHTTP2_FLAG_NONE, 0, kConnectionWindow) == 0;
}

nghttp2_option* NewOptions() {
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // credit is given back as the other side takes the bytes
  nghttp2_option_set_peer_max_concurrent_streams(opt, kMaxStreams);
  return opt;
}

}  // namespace

void H2Conn::Start(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                   const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
                   std::string what) {
  new H2Conn(ctx, client, std::move(snap), service, port, src, std::move(open), std::move(what));
}

H2Conn::H2Conn(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
               const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
               std::string what)
    : ctx_(ctx),
      snap_(std::move(snap)),
      service_(service),
      port_(port),
      open_(std::move(open)),
      what_(std::move(what)),
      src_(src) {
  ctx_.live.insert(this);
  client_end_.conn = this;
  client_.fd = client;
  TuneStream(client);
  std::string why;
  if (!CreateServer(&why)) {
    log::Warn("h2c connection not served", {{"conn", what_}, {"reason", why}});
    Finish(/*reset=*/true);
    return;
  }
  ctx_.loop.Add(client, kEvents, &client_end_);
}

void H2Conn::StartDestination(WorkerContext& ctx, int down, int up, bool up_connecting, InboundHttp::Params p) {
  new H2Conn(ctx, down, up, up_connecting, std::move(p));
}

H2Conn::H2Conn(WorkerContext& ctx, int down, int up, bool up_connecting, InboundHttp::Params p)
    : ctx_(ctx),
      snap_(p.snap),
      service_(nullptr),
      port_(p.dst.port),
      what_(p.what),
      src_(p.src),
      dest_(std::make_unique<InboundHttp::Params>(std::move(p))),
      sniffing_(true) {
  ctx_.live.insert(this);
  client_end_.conn = this;
  client_.fd = down;
  TuneStream(down);
  TuneStream(up);
  if (ctx_.observer() != nullptr && dest_->destination != nullptr) {
    destination_service_ = HttpServiceOf(*snap_, dest_->dst);
    src_peer_ = MakePeer(snap_.get(), src_, dest_->has_source_id ? dest_->source_id.ToString() : std::string());
    dst_peer_ = MakePeer(snap_.get(), dest_->dst, snap_->IdentityOf(*dest_->destination).ToString());
  }
  std::string why;
  pod_ = NewUpstream(up, dest_->dst, &why);
  if (pod_ == nullptr || dest_->destination == nullptr || !CreateServer(&why)) {
    log::Warn("h2c connection not served", {{"conn", what_}, {"reason", why}});
    Finish(/*reset=*/true);
    return;
  }
  pod_->connecting = up_connecting;
  pod_->wire.writable = !up_connecting;
  ctx_.loop.Add(down, kEvents, &client_end_);
}

H2Conn::~H2Conn() {
  ctx_.live.erase(this);
}

bool H2Conn::CreateServer(std::string* why) {
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, OnClientBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnClientHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnClientFrame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnClientData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnClientStreamClose);
  nghttp2_option* opt = NewOptions();
  int rv = nghttp2_session_server_new2(&client_.h2, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0 || !Settings(client_.h2, /*server=*/true)) {
    *why = std::string("nghttp2 server session: ") + nghttp2_strerror(rv);
    return false;
  }
  return true;
}

void H2Conn::ForceClose() {
  Finish(/*reset=*/true);
}

void H2Conn::Drain() {
  if (done_ || client_.h2 == nullptr) return;
  nghttp2_submit_goaway(client_.h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(client_.h2),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  Settle();
}

void H2Conn::OnClient(uint32_t ev) {
  if (done_) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) client_.readable = true;
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) client_.writable = true;
  if (sniffing_ && !Sniff()) return;
  std::string why;
  if (!client_.Read(&why)) {
    log::Info("h2c client connection failed", {{"conn", what_}, {"reason", why}});
    Finish(/*reset=*/true);
    return;
  }
  if (client_.eof) {
    // The client can send nothing more: streams still waiting for request bytes will not get them.
    std::vector<Stream*> open;
    for (auto& [id, s] : streams_) {
      if (!s->req_eof) open.push_back(s.get());
    }
    for (Stream* s : open) nghttp2_submit_rst_stream(client_.h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
  }
  Settle();
}

void H2Conn::OnUpstream(Upstream* u, uint32_t ev) {
  if (done_) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) u->wire.readable = true;
  if (u->connecting) {  // the pod connection (destination role)
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    u->connecting = false;
    if (int err = ConnectResult(u->wire.fd); err != 0) {
      ProxyStats::Add(ctx_.stats.upstream_failures);
      u->failed = std::string("pod ") + dest_->dst.ToString() + ": " + std::strerror(err);
      track_.SetError(u->failed);
      if (!sniffing_) Settle();
      if (fall_back_) Finish(/*reset=*/true);
      return;
    }
    ev |= EPOLLOUT;
  }
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) u->wire.writable = true;
  if (fall_back_) {
    FallBackToRelay();
    return;
  }
  // An HTTP/2 server may send its SETTINGS before the client's preface came: while the client's first bytes are not
  // known the pod's wait in its socket.
  if (sniffing_) return;
  std::string why;
  if (!u->wire.Read(&why)) {
    u->failed = why;
  } else if (u->wire.eof) {
    u->failed = "upstream closed";
  }
  Settle();
}

void H2Conn::Settle() {
  if (done_ || in_settle_ || sniffing_) return;
  in_settle_ = true;
  std::string why;
  for (int round = 0; round < 8 && !done_; ++round) {
    for (auto& u : upstreams_) {
      if (u->failed.empty() && !u->wire.Write(&why)) u->failed = why;
    }
    // Upstreams that failed: their streams end toward the client (an error response where none went out yet).
    for (size_t i = 0; i < upstreams_.size();) {
      Upstream* u = upstreams_[i].get();
      bool idle_done = u->goaway && u->wire.Done();
      if (u->failed.empty() && !idle_done) {
        ++i;
        continue;
      }
      DropUpstream(u);
    }
    if (!client_.Write(&why)) {
      log::Info("h2c client connection failed", {{"conn", what_}, {"reason", why}});
      in_settle_ = false;
      Finish(/*reset=*/true);
      return;
    }
    bool more = false;
    for (auto& u : upstreams_) more = more || nghttp2_session_want_write(u->wire.h2);
    if (!more) break;
  }
  in_settle_ = false;
  if (client_.Done() || (client_.eof && streams_.empty())) Finish(/*reset=*/false);
}

// ---------------------------------------------------------------- routing

HttpRequestHead H2Conn::RequestHead(const Stream* s) const {
  // The head as the HTTP/1.1 path sees it, so filters, matches and policy are the same code.
  HttpRequestHead head;
  head.method = s->method;
  head.target = s->path;
  head.headers.reserve(s->headers.size() + 1);
  if (!s->authority.empty()) head.headers.emplace_back("host", s->authority);
  for (const auto& h : s->headers) {
    if (h.first != "host" || s->authority.empty()) head.headers.push_back(h);
  }
  return head;
}

void H2Conn::RouteStream(Stream* s) {
  if (s->start == std::chrono::steady_clock::time_point{}) s->start = std::chrono::steady_clock::now();
  if (const std::string* ct = Find(s->headers, "content-type")) s->grpc = ct->starts_with("application/grpc");
  HttpRequestHead head = RequestHead(s);
  if (ctx_.observer() != nullptr) {
    if (!src_peer_.set) {
      src_peer_ = MakePeer(snap_.get(), src_, PrincipalOf(snap_.get(), src_.ip));
    }
    s->rec.source = src_peer_;
    s->rec.method = s->method;
    s->rec.path = s->path;
    if (const std::string* tp = head.Header("traceparent")) s->rec.traceparent = *tp;
  }
  // GRPCRoutes first (gRPC service and method), then HTTPRoutes; none: the Service (or its TCPRoute split).
  const agent::HttpRouteMatch* matched = nullptr;
  const agent::HttpRouteRule* rule =
      traffic::MatchGrpcRule(service_->GrpcRulesFor(port_), head.Path(), &head.headers, &matched);
  if (rule == nullptr) {
    traffic::HttpRequestView view;
    view.method = head.method;
    view.path = head.Path();
    view.query = head.Query();
    view.headers = &head.headers;
    rule = traffic::MatchHttpRule(service_->HttpRulesFor(port_), view, &matched);
  }
  if (rule != nullptr) s->rec.route = rule->key;
  if (rule != nullptr && !s->policy_done && (rule->rate_limit.enabled() || rule->fault.enabled())) {
    s->policy_done = true;  // once per stream: a delayed stream is routed again when its timer ends
    RoutePolicyVerdict v =
        DecideRoutePolicy(ctx_.limiter ? &ctx_.limiter->routes() : nullptr, *rule, snap_.get(), src_.ip);
    if (v.reply) {
      ReplyLocally(s, v.local);
      return;
    }
    if (v.delay.count() > 0) {
      HoldStream(s, v.delay, rule->fault.policy);
      return;
    }
  }
  traffic::Route route;
  std::string why;
  auto st = traffic::RouteHttpRequest(*ctx_.balancer, *snap_, *service_, port_, rule, &route, &why, src_.ip.family());
  if (st != traffic::RouteStatus::kOk) {
    ProxyStats::Add(st == traffic::RouteStatus::kOverflow ? ctx_.stats.circuit_breaker_rejections
                                                          : ctx_.stats.service_no_endpoint);
    FailStream(s, 503, why, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (ctx_.observer() != nullptr) {
    s->rec.destination = MakePeer(snap_.get(), route.addr, PrincipalOf(snap_.get(), route.addr.ip));
    s->rec.destination_service = route.service->Key();
  }
  s->load = std::move(route.load);
  s->rule = rule;
  s->backend = route.service;
  s->backend_port = route.service_port;
  s->counted = true;
  ctx_.http.retry_budget.RequestStarted();
  const net::IpAddr ip = route.addr.ip;
  Upstream* u = UpstreamFor(std::move(route), &why);
  if (u == nullptr) {
    FailStream(s, 503, why, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (rule != nullptr) {
    ApplyRequestFilters(*rule, matched, &head);
    if (!rule->response_headers.empty()) s->response_mods = &rule->response_headers;
  }
  // The stream's CLIENT span (its retries carry the same traceparent).
  if (ctx_.opts.tracing && ctx_.observer() != nullptr) {
    TraceHttpRequest(&head, snap_->tracing_sampling_ppm(), ctx_.span_ids, &s->rec);
  }
  // Mirrors are sampled now, so that a stream none of them takes keeps nothing.
  for (size_t i = 0; rule != nullptr && i < rule->mirrors.size() && i < 32; ++i) {
    if (MirrorSampled(rule->mirrors[i].percent, static_cast<uint32_t>(ctx_.http.rng()))) s->mirror_mask |= 1u << i;
  }
  const bool retries = rule != nullptr && rule->retry.attempts > 0;
  if ((retries || s->mirror_mask != 0) && s->to_up.size() <= kMaxReplayBody) {
    // Kept until the response head comes (retries) and the request ended (mirrors); DATA that came while the stream
    // was held is the start of the replay.
    s->replayable = true;
    s->sent = head;
    s->replay = s->to_up;
  }
  if (!StartTry(s, u, ip, head)) return;
  if (rule != nullptr) ArmTimeout(s, *rule);
}

// ---------------------------------------------------------------- retries

bool H2Conn::StartTry(Stream* s, Upstream* u, net::IpAddr ip, const HttpRequestHead& head) {
  std::string why;
  if (!SubmitUpstream(s, u, head, &why)) {
    FailStream(s, 503, why, NGHTTP2_REFUSED_STREAM);
    return false;
  }
  ++s->attempts;
  s->tried.push_back(ip);
  if (s->rule != nullptr && s->rule->backend_request_timeout.count() > 0) {
    const int32_t id = s->id;
    const auto after = s->rule->backend_request_timeout;
    s->try_timer = ctx_.loop.AddTimer(after, [this, id, after] {
      OnStreamTimeout(id, after, /*per_try=*/true);
      Settle();
    });
  }
  return true;
}

void H2Conn::KeepForReplay(Stream* s, const char* data, size_t len) {
  if (!s->replayable) return;
  if (s->replay.size() + len > kMaxReplayBody) {
    // Over the bound: the stream can no longer be sent again whole, so it is neither retried (this try goes on) nor
    // mirrored.
    DropReplay(s);
    return;
  }
  s->replay.append(data, len);
}

void H2Conn::DropReplay(Stream* s) {
  s->replayable = false;
  std::string().swap(s->replay);
  s->sent = HttpRequestHead{};
}

void H2Conn::MirrorIfEnded(Stream* s) {
  if (s->mirror_mask == 0 || !s->req_eof || s->rule == nullptr) return;
  const uint32_t mask = std::exchange(s->mirror_mask, 0);
  const agent::HttpRouteRule& rule = *s->rule;
  for (size_t i = 0; i < rule.mirrors.size() && i < 32; ++i) {
    if (!(mask & (1u << i))) continue;
    traffic::Route route;
    std::string why = "request body over the mirror bound";
    int fd = -1;
    if (s->replayable) {
      why = "too many mirrors in flight";
      if (HttpMirror::InFlight(ctx_) < HttpMirror::kMaxInFlight &&
          traffic::RouteToBackend(*ctx_.balancer, *snap_, rule.mirrors[i].backend, &route, &why, src_.ip.family()) ==
              traffic::RouteStatus::kOk) {
        fd = open_(std::move(route), &why);
      }
    }
    if (fd < 0) {
      log::Debug("h2 mirror dropped", {{"conn", what_}, {"route", rule.key}, {"reason", why}});
      ProxyStats::Add(ctx_.stats.http_mirror_dropped);
      continue;
    }
    // The request as the primary got it (filters applied, the same traceparent), marked as a shadow copy.
    H2Mirror::Request copy;
    copy.method = s->method;
    copy.scheme = s->scheme.empty() ? "http" : s->scheme;
    copy.path = s->sent.target;
    copy.authority = s->authority;
    bool host_seen = false;
    for (const auto& h : s->sent.headers) {
      if (h.first != "host") {
        copy.headers.push_back(h);
      } else if (!host_seen) {
        copy.authority = h.second;
        host_seen = true;
      }
    }
    if (!copy.authority.empty()) copy.authority = ShadowHost(copy.authority);
    copy.body = s->replay;
    copy.trailers = s->req_trailers;
    const auto timeout = rule.request_timeout.count() > 0 ? rule.request_timeout : kMirrorTimeout;
    ProxyStats::Add(H2Mirror::Start(ctx_, fd, std::move(copy), timeout) ? ctx_.stats.http_mirrored
                                                                        : ctx_.stats.http_mirror_dropped);
  }
  if (s->resp_submitted) DropReplay(s);  // no retry can need it any more either
}

bool H2Conn::CanRetry(Stream* s, TryOutcome outcome, int status) {
  if (s->rule == nullptr || dest_ != nullptr || !IsRetryable(s->rule->retry, outcome, status)) return false;
  // attempts counts the first try: retry.attempts retries make 1 + attempts tries.
  if (s->attempts > s->rule->retry.attempts || !s->replayable || s->resp_submitted || done_) return false;
  if (!s->holds_budget) {
    if (!ctx_.http.retry_budget.TryAcquire()) {
      ProxyStats::Add(ctx_.stats.http_retry_budget_exhausted);
      return false;
    }
    s->holds_budget = true;
  }
  return true;
}

void H2Conn::RetryStream(Stream* s, const std::string& why) {
  if (s->try_timer != 0) ctx_.loop.CancelTimer(s->try_timer);
  s->try_timer = 0;
  DetachUpstream(s, /*cancel=*/true);  // nothing of this try reaches the client
  s->load.Release();
  s->status = 0;
  s->resp_headers.clear();
  s->resp_trailers.clear();
  s->to_client.clear();
  s->resp_eof = false;
  s->retry_pending = true;
  auto delay = ctx_.http.backoff.Next(s->attempts, s->rule->retry.backoff);
  log::Debug("h2 stream retried", {{"conn", what_},
                                   {"route", s->rule->key},
                                   {"reason", why},
                                   {"attempt", s->attempts + 1},
                                   {"backoff_ms", delay.count()}});
  const int32_t id = s->id;
  s->backoff_timer = ctx_.loop.AddTimer(delay, [this, id] {
    auto it = streams_.find(id);
    if (done_ || it == streams_.end()) return;
    it->second->backoff_timer = 0;
    RetryNow(it->second.get());
    Settle();
  });
}

void H2Conn::RetryNow(Stream* s) {
  s->retry_pending = false;
  if (!s->replayable) {  // the body grew past the bound while backing off
    FailStream(s, 503, "request body too large to retry", NGHTTP2_REFUSED_STREAM);
    return;
  }
  // The backend the split chose stays; another endpoint of it when there is one, else any (the same one again).
  traffic::Route route;
  route.service = s->backend;
  route.service_port = s->backend_port;
  std::string why;
  auto st = traffic::Reroute(*ctx_.balancer, *snap_, s->tried, &route, &why, /*per_request=*/true, src_.ip.family());
  if (st == traffic::RouteStatus::kNoEndpoint) {
    route.service = s->backend;
    route.service_port = s->backend_port;
    st = traffic::Reroute(*ctx_.balancer, *snap_, {}, &route, &why, /*per_request=*/true, src_.ip.family());
  }
  if (st != traffic::RouteStatus::kOk) {
    FailStream(s, 503, why + " (retry)", NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (ctx_.observer() != nullptr) {
    s->rec.destination = MakePeer(snap_.get(), route.addr, PrincipalOf(snap_.get(), route.addr.ip));
  }
  s->load = std::move(route.load);
  const net::IpAddr ip = route.addr.ip;
  Upstream* u = UpstreamFor(std::move(route), &why);
  if (u == nullptr) {
    FailStream(s, 503, why, NGHTTP2_REFUSED_STREAM);
    return;
  }
  // The whole body so far goes again; of it, only what the client sent since the last credit is still owed to it.
  const size_t owed = s->to_up.size() - s->credited;
  s->to_up = s->replay;
  s->credited = s->to_up.size() - owed;
  StartTry(s, u, ip, s->sent);
}

void H2Conn::EndStream(Stream* s) {
  for (uint64_t* t : {&s->hold_timer, &s->timeout_timer, &s->try_timer, &s->backoff_timer}) {
    if (*t != 0) ctx_.loop.CancelTimer(*t);
    *t = 0;
  }
  if (s->holds_budget) ctx_.http.retry_budget.Release();
  if (s->counted) ctx_.http.retry_budget.RequestEnded();
  s->holds_budget = s->counted = false;
  // Sampled copies of a request that never ended (reset, connection gone) are not sent.
  ProxyStats::Add(ctx_.stats.http_mirror_dropped, static_cast<uint64_t>(std::popcount(s->mirror_mask)));
  s->mirror_mask = 0;
}

// ---------------------------------------------------------------- destination role

bool H2Conn::Sniff() {
  DestinationL7 seen = DestinationL7::kHttp1OrHttp2;
  while (seen == DestinationL7::kHttp1OrHttp2) {
    char buf[kHttpSniffBytes];
    ssize_t n = read(client_.fd, buf, kHttpSniffBytes - sniffed_.size());
    if (n > 0) {
      sniffed_.append(buf, static_cast<size_t>(n));
      seen = SniffHttpVersion(sniffed_, /*closed=*/false);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      client_.readable = false;
      return false;
    }
    if (n < 0 || sniffed_.empty()) {  // gone before a byte came: nothing to relay
      Finish(/*reset=*/n < 0);
      return false;
    }
    seen = SniffHttpVersion(sniffed_, /*closed=*/true);  // closed within the first bytes: they go on as they are
  }
  if (seen != DestinationL7::kHttp2) {
    if (dest_->http1_too) {
      HandToHttp1();  // which decides, or falls back to the byte stream, as on any HTTP/1.1 port
      return false;
    }
    if (dest_->enforce) {
      // Its requests must each be decided and cannot be read: nothing of it may reach the pod.
      log::Info("not HTTP/2 on a port whose requests are decided: closed", {{"conn", what_}});
      ProxyStats::Add(ctx_.stats.denials);
      Finish(/*reset=*/true);
      return false;
    }
    FallBackToRelay();
    return false;
  }
  sniffing_ = false;
  ssize_t rv = nghttp2_session_mem_recv(client_.h2, reinterpret_cast<const uint8_t*>(sniffed_.data()), sniffed_.size());
  std::string().swap(sniffed_);
  if (rv < 0) {
    log::Info("h2c client connection failed", {{"conn", what_}, {"reason", nghttp2_strerror(static_cast<int>(rv))}});
    Finish(/*reset=*/true);
    return false;
  }
  if (ctx_.observer() != nullptr && dest_->conn.flow[0] != '\0') track_.Open(ctx_.observer(), std::move(dest_->conn));
  return true;
}

void H2Conn::FallBackToRelay() {
  if (pod_ == nullptr || !pod_->failed.empty()) {
    Finish(/*reset=*/true);
    return;
  }
  if (pod_->connecting) {
    fall_back_ = true;  // OnUpstream comes back here once the connect ended
    return;
  }
  // At most the preface's length on a connection nothing was written to yet: the socket buffer takes it whole.
  ssize_t n = send(pod_->wire.fd, sniffed_.data(), sniffed_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(sniffed_.size())) {
    log::Info("h2c fallback to the byte relay failed", {{"conn", what_}, {"reason", std::strerror(errno)}});
    Finish(/*reset=*/true);
    return;
  }
  ProxyStats::Add(ctx_.stats.destination_protocol_fallbacks);
  log::Debug("not HTTP/2: byte relay", {{"conn", what_}});
  int down, up;
  HandOff(&down, &up);
  // The relay reports the connection where this object would have (same-node, plaintext); on an HBONE stream the
  // stream does, so the relay's record stays unobserved.
  ConnRecord rec = std::move(dest_->conn);
  SpliceRelay::Start(ctx_, down, up, what_, std::move(rec));
}

void H2Conn::HandToHttp1() {
  if (pod_ == nullptr || !pod_->failed.empty()) {
    Finish(/*reset=*/true);
    return;
  }
  log::Debug("not HTTP/2 on a port that is HTTP/1.1 too", {{"conn", what_}});
  const bool connecting = pod_->connecting;
  InboundHttp::Params p = std::move(*dest_);
  p.http1_too = false;
  p.preread = std::move(sniffed_);
  int down, up;
  HandOff(&down, &up);
  InboundHttp::Start(ctx_, down, up, connecting, std::move(p));
}

void H2Conn::HandOff(int* down, int* up) {
  *down = client_.fd;
  *up = pod_->wire.fd;
  ctx_.loop.Remove(*down);
  ctx_.loop.Remove(*up);
  client_.fd = -1;
  pod_->wire.fd = -1;
  done_ = true;
  for (auto& u : upstreams_) ctx_.loop.DeleteLater(u.release());
  upstreams_.clear();
  pod_ = nullptr;
  ctx_.loop.DeleteLater(this);
}

void H2Conn::AdmitStream(Stream* s) {
  s->start = std::chrono::steady_clock::now();
  if (const std::string* ct = Find(s->headers, "content-type")) s->grpc = ct->starts_with("application/grpc");
  HttpRequestHead head = RequestHead(s);
  if (ctx_.observer() != nullptr) {
    s->rec.reporter = Reporter::kDestination;
    s->rec.source = src_peer_;
    s->rec.destination = dst_peer_;
    s->rec.destination_service = destination_service_;
    s->rec.method = s->method;
    s->rec.path = s->path;
    if (const std::string* tp = head.Header("traceparent")) s->rec.traceparent = *tp;
  }
  std::string path, why;
  if (!NormalizePolicyPath(head.target, &path, &why)) {
    s->rec.error = why;
    LocalReply bad;
    bad.status = 400;
    bad.body = why + "\n";
    bad.grpc_status = kGrpcInternal;
    bad.grpc_message = GrpcPercentEncode("zeromesh: " + why);
    ReplyLocally(s, bad);
    return;
  }
  // The pod gets the path that was authorized, as InboundHttp does.
  if (head.target.starts_with("/") && head.Path() != path) {
    std::string query(head.Query());
    head.target = query.empty() && head.target.find('?') == std::string::npos ? path : path + "?" + query;
  }
  if (ctx_.opts.authorize) {
    HttpRequestAttrs attrs{head.method, path, &head.headers};
    AuthzRequest req{dest_->has_source_id ? &dest_->source_id : nullptr, src_.ip, dest_->destination, port_, &attrs};
    AuthzDecision d = ctx_.opts.authorize(req);
    if (!d.allow) {
      Deny(s, d);
      return;
    }
  }
  // The Service's spec.http.rateLimit (per pod, shared by the node's workers), as InboundHttp::StartRequest.
  LocalReply limited;
  if (DestinationRateLimited(ctx_.limiter ? &ctx_.limiter->routes() : nullptr, *snap_, dest_->dst,
                             dest_->has_source_id ? &dest_->source_id : nullptr, src_.ip, &limited)) {
    ReplyLocally(s, limited);
    return;
  }
  if (pod_ == nullptr || !pod_->failed.empty() || pod_->goaway) {
    FailStream(s, 503, "pod connection failed", NGHTTP2_REFUSED_STREAM);
    return;
  }
  // The SERVER span, child of the source proxy's CLIENT span; the pod's own spans nest under it.
  if (ctx_.opts.tracing && ctx_.observer() != nullptr) {
    TraceHttpRequest(&head, snap_->tracing_sampling_ppm(), ctx_.span_ids, &s->rec);
  }
  if (!SubmitUpstream(s, pod_, head, &why)) FailStream(s, 503, why, NGHTTP2_REFUSED_STREAM);
}

void H2Conn::Deny(Stream* s, const AuthzDecision& d) {
  ProxyStats::Add(ctx_.stats.denials);
  log::Info("http request denied",
            {{"conn", what_}, {"method", s->method}, {"path", s->path.substr(0, 256)}, {"reason", d.reason}});
  const std::string policy = d.policy.empty() ? "unknown" : d.policy;
  const std::string reason = d.reason.substr(0, kMaxReasonInBody);
  s->rec.policy = policy;
  s->rec.error = d.reason;
  LocalReply deny;
  deny.status = 403;
  deny.headers = {{"x-zeromesh-denied", policy}};
  deny.body = reason + "\n";
  deny.grpc_status = kGrpcPermissionDenied;
  deny.grpc_message = GrpcPercentEncode(reason);
  ReplyLocally(s, deny);
}

void H2Conn::ArmTimeout(Stream* s, const agent::HttpRouteRule& rule) {
  const auto after = rule.request_timeout;
  if (after.count() == 0 || s->timeout_timer != 0) return;
  const int32_t id = s->id;
  s->timeout_timer = ctx_.loop.AddTimer(after, [this, id, after] {
    OnStreamTimeout(id, after, /*per_try=*/false);
    Settle();
  });
}

void H2Conn::OnStreamTimeout(int32_t id, std::chrono::milliseconds after, bool per_try) {
  auto it = streams_.find(id);
  if (done_ || it == streams_.end()) return;
  Stream* s = it->second.get();
  (per_try ? s->try_timer : s->timeout_timer) = 0;
  if (s->resp_eof) return;                 // the upstream's response ended in time (the client may still be reading it)
  s->load.Observe(traffic::Clock::now());  // the endpoint was at least this slow
  if (per_try && CanRetry(s, TryOutcome::kTimeout, 0)) {
    RetryStream(s, "per-try timeout");
    return;
  }
  ProxyStats::Add(ctx_.stats.http_timeouts);
  const std::string why =
      (per_try ? "per-try timeout (" : "request timeout (") + std::to_string(after.count()) + " ms)";
  if (s->resp_submitted) {
    FailStream(s, 504, why, NGHTTP2_CANCEL);  // part of the response went out: only a reset is honest
    return;
  }
  log::Info("h2 stream failed", {{"conn", what_}, {"path", s->path}, {"reason", why}});
  DetachUpstream(s, /*cancel=*/true);
  s->rec.error = why;
  LocalReply reply;
  reply.status = 504;
  reply.body = "upstream request timeout\n";
  reply.grpc_status = 4;  // DEADLINE_EXCEEDED
  reply.grpc_message = "zeromesh: upstream request timeout";
  ReplyLocally(s, reply);
}

bool H2Conn::SubmitUpstream(Stream* s, Upstream* u, const HttpRequestHead& head, std::string* why) {
  std::string authority = s->authority;
  Headers regular;
  regular.reserve(head.headers.size());
  bool host_seen = false;
  for (const auto& h : head.headers) {
    if (h.first == "host") {  // back to ":authority" (a URLRewrite hostname lands here)
      if (!host_seen) authority = h.second;
      host_seen = true;
      continue;
    }
    regular.push_back(h);
  }
  static const std::string kMethod = ":method", kScheme = ":scheme", kAuthority = ":authority", kPath = ":path";
  std::string scheme = s->scheme.empty() ? "http" : s->scheme;
  std::vector<nghttp2_nv> nva;
  nva.reserve(regular.size() + 4);
  nva.push_back(Nv(kMethod, s->method));
  nva.push_back(Nv(kScheme, scheme));
  if (!authority.empty()) nva.push_back(Nv(kAuthority, authority));
  nva.push_back(Nv(kPath, head.target));  // a URLRewrite may have changed it
  for (const auto& h : regular) nva.push_back(Nv(h.first, h.second));
  nghttp2_data_provider prd{};
  prd.read_callback = ReadRequestBody;
  bool body = !(s->req_eof && s->to_up.empty() && s->req_trailers.empty());
  int32_t id = nghttp2_submit_request(u->wire.h2, nullptr, nva.data(), nva.size(), body ? &prd : nullptr, s);
  if (id < 0) {
    *why = std::string("upstream stream: ") + nghttp2_strerror(id);
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) u->goaway = true;
    pool_.erase(u->key);
    return false;
  }
  s->up = u;
  s->up_id = id;
  s->up_closed = false;
  return true;
}

H2Conn::Upstream* H2Conn::UpstreamFor(traffic::Route route, std::string* why) {
  const net::SockAddr key = route.addr;
  auto it = pool_.find(key);
  if (it != pool_.end() && !it->second->goaway && it->second->failed.empty()) return it->second;
  int fd = open_(std::move(route), why);
  if (fd < 0) return nullptr;
  Upstream* u = NewUpstream(fd, key, why);
  if (u != nullptr) pool_[key] = u;
  return u;
}

H2Conn::Upstream* H2Conn::NewUpstream(int fd, const net::SockAddr& key, std::string* why) {
  auto u = std::make_unique<Upstream>();
  u->conn = this;
  u->key = key;
  u->wire.fd = fd;
  u->wire.writable = true;  // a fresh socketpair end
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnUpstreamHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnUpstreamFrame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnUpstreamData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnUpstreamStreamClose);
  nghttp2_option* opt = NewOptions();
  int rv = nghttp2_session_client_new2(&u->wire.h2, cbs, u.get(), opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0 || !Settings(u->wire.h2, /*server=*/false)) {
    *why = "nghttp2 client session failed";
    close(fd);
    return nullptr;
  }
  Upstream* raw = u.get();
  upstreams_.push_back(std::move(u));
  ctx_.loop.Add(fd, kEvents, raw);
  return raw;
}

// ---------------------------------------------------------------- responses and failures

void H2Conn::SubmitResponse(Stream* s, bool end_stream) {
  if (s->response_mods != nullptr) {
    for (const auto& m : *s->response_mods) ApplyHeaderModifier(m, &s->resp_headers);
  }
  std::string status = std::to_string(s->status);
  static const std::string kStatus = ":status";
  std::vector<nghttp2_nv> nva;
  nva.reserve(s->resp_headers.size() + 1);
  nva.push_back(Nv(kStatus, status));
  for (const auto& h : s->resp_headers) nva.push_back(Nv(h.first, h.second));
  s->resp_submitted = true;
  // The response has started: the request is not sent again, and kept only for mirrors still to send.
  if (s->backoff_timer != 0) ctx_.loop.CancelTimer(s->backoff_timer);
  s->backoff_timer = 0;
  s->retry_pending = false;
  if (s->mirror_mask == 0) DropReplay(s);
  if (end_stream) {
    if (const std::string* g = Find(s->resp_headers, "grpc-status")) s->grpc_status = *g;
    Report(s, "");
    nghttp2_submit_response(client_.h2, s->id, nva.data(), nva.size(), nullptr);
    return;
  }
  // The body is attached when its first bytes (or its end) arrive: a response that ends with trailers and no DATA
  // (a gRPC stream of no messages) is relayed as such, without an empty DATA frame in between.
  nghttp2_submit_headers(client_.h2, NGHTTP2_FLAG_NONE, s->id, nullptr, nva.data(), nva.size(), nullptr);
  Resume(s);
}

void H2Conn::FailStream(Stream* s, int http_status, const std::string& why, uint32_t code) {
  log::Info("h2 stream failed", {{"conn", what_}, {"path", s->path}, {"reason", why}});
  DetachUpstream(s, /*cancel=*/true);
  if (s->resp_submitted) {
    Report(s, why);
    nghttp2_submit_rst_stream(client_.h2, NGHTTP2_FLAG_NONE, s->id, code);
    return;
  }
  s->response_mods = nullptr;
  s->resp_trailers.clear();
  s->to_client.clear();
  s->resp_eof = true;
  s->rec.error = why;
  if (s->grpc) {
    // Trailers-only: UNAVAILABLE, which gRPC clients may retry.
    s->status = 200;
    s->resp_headers = {{"content-type", "application/grpc"},
                       {"grpc-status", kGrpcUnavailable},
                       {"grpc-message", "zeromesh: no healthy upstream"}};
    SubmitResponse(s, /*end_stream=*/true);
  } else {
    s->status = http_status;
    s->resp_headers = {{"content-type", "text/plain"}};
    s->to_client = http_status == 503 ? "Service Unavailable\n" : "Bad Gateway\n";
    SubmitResponse(s, /*end_stream=*/false);
  }
  // Request bytes still coming are credited back and dropped (OnClientData): the stream ends with the request.
}

void H2Conn::ReplyLocally(Stream* s, const LocalReply& reply) {
  log::Debug("h2 stream answered by route policy", {{"conn", what_}, {"path", s->path}, {"fault", reply.fault}});
  s->rec.fault = reply.fault;
  s->rec.fault_policy = reply.policy;
  s->resp_eof = true;
  if (s->grpc) {  // trailers-only, as gRPC servers answer a call they refuse
    s->status = 200;
    s->resp_headers = {{"content-type", "application/grpc"},
                       {"grpc-status", std::to_string(reply.grpc_status)},
                       {"grpc-message", reply.grpc_message}};
    s->resp_headers.insert(s->resp_headers.end(), reply.headers.begin(), reply.headers.end());
    SubmitResponse(s, /*end_stream=*/true);
    return;
  }
  s->status = reply.status;
  s->resp_headers = {{"content-type", "text/plain"}};
  s->resp_headers.insert(s->resp_headers.end(), reply.headers.begin(), reply.headers.end());
  if (BodylessReply(s->method, reply.status)) {
    SubmitResponse(s, /*end_stream=*/true);
    return;
  }
  s->to_client = reply.body;
  SubmitResponse(s, /*end_stream=*/false);
  // Request bytes still coming are credited back and dropped (OnClientData): no upstream will take them.
}

void H2Conn::HoldStream(Stream* s, std::chrono::milliseconds delay, const std::string& policy) {
  s->rec.fault = "delay";
  s->rec.fault_policy = policy;
  s->held = true;  // request DATA is kept (within the stream window) until the stream is routed
  const int32_t id = s->id;
  s->hold_timer = ctx_.loop.AddTimer(delay, [this, id] {
    auto it = streams_.find(id);
    if (done_ || it == streams_.end()) return;
    Stream* held = it->second.get();
    held->hold_timer = 0;
    held->held = false;
    RouteStream(held);
    MirrorIfEnded(held);
    Settle();
  });
}

void H2Conn::DetachUpstream(Stream* s, bool cancel) {
  if (s->up == nullptr) return;
  nghttp2_session* h2 = s->up->wire.h2;
  if (!s->up_closed) {
    if (cancel) nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->up_id, NGHTTP2_CANCEL);
    nghttp2_session_set_stream_user_data(h2, s->up_id, nullptr);
  }
  // Response bytes still held count against the upstream connection's window: give them back.
  if (!s->to_client.empty()) nghttp2_session_consume_connection(h2, s->to_client.size());
  s->to_client.clear();
  s->up = nullptr;
  s->up_closed = true;
  s->load.Release();
}

void H2Conn::DropUpstream(Upstream* u) {
  if (pool_.count(u->key) && pool_[u->key] == u) pool_.erase(u->key);
  std::vector<Stream*> hit;
  for (auto& [id, s] : streams_) {
    if (s->up == u) hit.push_back(s.get());
  }
  for (Stream* s : hit) {
    bool complete = s->resp_eof;
    s->up = nullptr;  // the session goes away with its streams: nothing to cancel or credit
    s->up_closed = true;
    if (complete) continue;
    if (CanRetry(s, TryOutcome::kConnectFailed, 0)) {
      RetryStream(s, "upstream connection failed: " + u->failed);
    } else {
      FailStream(s, 503, "upstream connection failed: " + u->failed, NGHTTP2_INTERNAL_ERROR);
    }
  }
  if (u == pod_) {
    // Destination role: no other pod connection to open; the client opens a new one for its next streams.
    pod_ = nullptr;
    nghttp2_submit_goaway(client_.h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(client_.h2),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  }
  ctx_.loop.Remove(u->wire.fd);
  close(u->wire.fd);
  auto it = std::find_if(upstreams_.begin(), upstreams_.end(), [u](const auto& p) { return p.get() == u; });
  ctx_.loop.DeleteLater(it->release());  // its events may be in the loop's current batch
  upstreams_.erase(it);
}

void H2Conn::Resume(Stream* s) {
  if (s->resp_submitted && !s->body_attached && (!s->to_client.empty() || s->resp_eof)) {
    s->body_attached = true;
    if (s->to_client.empty() && !s->resp_trailers.empty()) {
      if (const std::string* g = Find(s->resp_trailers, "grpc-status")) s->grpc_status = *g;
      auto nva = Nvs(s->resp_trailers);
      nghttp2_submit_trailer(client_.h2, s->id, nva.data(), nva.size());
      Report(s, "");
    } else {
      nghttp2_data_provider prd{};
      prd.read_callback = ReadResponseBody;
      nghttp2_submit_data(client_.h2, NGHTTP2_FLAG_END_STREAM, s->id, &prd);
    }
  }
  if (s->client_deferred && (!s->to_client.empty() || s->resp_eof)) {
    s->client_deferred = false;
    nghttp2_session_resume_data(client_.h2, s->id);
  }
  if (s->up_deferred && s->up != nullptr && !s->up_closed && (!s->to_up.empty() || s->req_eof)) {
    s->up_deferred = false;
    nghttp2_session_resume_data(s->up->wire.h2, s->up_id);
  }
}

void H2Conn::Report(Stream* s, const std::string& error) {
  ConnObserver* obs = ctx_.observer();
  if (obs == nullptr || !s->rec.source.set) return;
  s->rec.status = s->status;
  s->rec.grpc_status = s->grpc_status;
  s->rec.attempts = std::max<uint32_t>(s->attempts, 1);
  if (s->rec.error.empty()) s->rec.error = error;
  s->rec.duration = std::chrono::steady_clock::now() - s->start;
  // A stream the proxy answered itself (denied, refused, no upstream) gets its span here.
  if (ctx_.opts.tracing) TraceLocalReply(snap_->tracing_sampling_ppm(), ctx_.span_ids, &s->rec);
  obs->OnRequest(s->rec);
  if (track_.active()) {  // the connection's bytes, as its streams carried them
    track_.AddSent(s->rec.request_bytes);
    track_.AddReceived(s->rec.response_bytes);
  }
  s->rec.source.set = false;  // reported: once
}

void H2Conn::Finish(bool reset) {
  if (done_) return;
  done_ = true;
  for (auto& [id, s] : streams_) {
    EndStream(s.get());
    Report(s.get(), reset ? "connection reset" : "connection closed");
  }
  streams_.clear();
  for (auto& u : upstreams_) {
    ctx_.loop.Remove(u->wire.fd);
    close(u->wire.fd);
    ctx_.loop.DeleteLater(u.release());
  }
  upstreams_.clear();
  pool_.clear();
  if (client_.fd >= 0) {
    ctx_.loop.Remove(client_.fd);
    if (reset) {
      ResetAndClose(client_.fd);
    } else {
      close(client_.fd);
    }
    client_.fd = -1;
  }
  if (reset) track_.SetError("reset");
  if (dest_ == nullptr || track_.active()) ProxyStats::Add(ctx_.stats.connections_closed);
  track_.Close();
  ctx_.loop.DeleteLater(this);
}

// ---------------------------------------------------------------- client session callbacks

int H2Conn::OnClientBeginHeaders(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Conn*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto s = std::make_unique<Stream>();
  s->id = frame->hd.stream_id;
  s->up_closed = true;
  nghttp2_session_set_stream_user_data(h2, s->id, s.get());
  self->streams_[s->id] = std::move(s);
  return 0;
}

int H2Conn::OnClientHeader(nghttp2_session* h2, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                           const uint8_t* value, size_t valuelen, uint8_t, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id));
  if (s == nullptr) return 0;
  std::string n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    s->req_trailers.emplace_back(std::move(n), std::move(v));
  } else if (n == ":method") {
    s->method = std::move(v);
  } else if (n == ":scheme") {
    s->scheme = std::move(v);
  } else if (n == ":authority") {
    s->authority = std::move(v);
  } else if (n == ":path") {
    s->path = std::move(v);
  } else if (n.empty() || n[0] != ':') {
    s->headers.emplace_back(std::move(n), std::move(v));
  }
  return 0;
}

int H2Conn::OnClientFrame(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Conn*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id));
  if (s == nullptr) return 0;
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->req_eof = true;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (self->dest_ != nullptr) {
      self->AdmitStream(s);
    } else {
      self->RouteStream(s);
      self->MirrorIfEnded(s);
    }
    return 0;
  }
  self->Resume(s);
  self->MirrorIfEnded(s);
  return 0;
}

int H2Conn::OnClientData(nghttp2_session* h2, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr || ((s->up == nullptr || s->up_closed) && !s->held && !s->retry_pending)) {
    nghttp2_session_consume(h2, id, len);  // nobody will take it: credit it back now
    // A mirror copy still wants the whole request (the primary may have ended or failed first).
    if (s != nullptr && s->mirror_mask != 0) {
      static_cast<H2Conn*>(user)->KeepForReplay(s, reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }
  s->to_up.append(reinterpret_cast<const char*>(data), len);
  static_cast<H2Conn*>(user)->KeepForReplay(s, reinterpret_cast<const char*>(data), len);
  s->rec.request_bytes += len;
  static_cast<H2Conn*>(user)->Resume(s);
  return 0;
}

int H2Conn::OnClientStreamClose(nghttp2_session* h2, int32_t id, uint32_t code, void* user) {
  auto* self = static_cast<H2Conn*>(user);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr) return 0;
  if (code != NGHTTP2_NO_ERROR) {
    self->Report(s, std::string("stream reset by the client: ") + nghttp2_http2_strerror(code));
  } else {
    self->Report(s, s->resp_eof ? "" : "stream closed before the response ended");
  }
  self->EndStream(s);
  // RST_STREAM the other way; credit what the upstream sent and nobody will read.
  self->DetachUpstream(s, /*cancel=*/true);
  if (s->to_up.size() > s->credited) nghttp2_session_consume_connection(h2, s->to_up.size() - s->credited);
  self->streams_.erase(id);
  return 0;
}

ssize_t H2Conn::ReadResponseBody(nghttp2_session* h2, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                                 nghttp2_data_source*, void* user) {
  auto* self = static_cast<H2Conn*>(user);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = std::min(len, s->to_client.size());
  if (n > 0) {
    std::memcpy(buf, s->to_client.data(), n);
    s->to_client.erase(0, n);
    s->rec.response_bytes += n;
    // The client session took them: the upstream may send as much again.
    if (s->up != nullptr) nghttp2_session_consume(s->up->wire.h2, s->up_id, n);
  }
  if (!s->to_client.empty()) return static_cast<ssize_t>(n);
  if (s->resp_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->resp_trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      if (const std::string* g = Find(s->resp_trailers, "grpc-status")) s->grpc_status = *g;
      auto nva = Nvs(s->resp_trailers);
      nghttp2_submit_trailer(h2, id, nva.data(), nva.size());
    }
    self->Report(s, "");
    return static_cast<ssize_t>(n);
  }
  if (n > 0) return static_cast<ssize_t>(n);
  s->client_deferred = true;
  return NGHTTP2_ERR_DEFERRED;
}

// ---------------------------------------------------------------- upstream session callbacks

int H2Conn::OnUpstreamHeader(nghttp2_session* h2, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                             const uint8_t* value, size_t valuelen, uint8_t, void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id));
  if (s == nullptr) return 0;
  std::string n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  // After an interim 1xx (status reset to 0 in OnUpstreamFrame), the next HEADERS is the response again.
  bool head = frame->headers.cat == NGHTTP2_HCAT_RESPONSE || (!s->resp_submitted && s->status == 0);
  if (!head) {
    s->resp_trailers.emplace_back(std::move(n), std::move(v));
  } else if (n == ":status") {
    int st = 0;
    for (char c : v) st = (c >= '0' && c <= '9' && st < 1000) ? st * 10 + (c - '0') : 1000;
    s->status = st;
  } else if (n.empty() || n[0] != ':') {
    s->resp_headers.emplace_back(std::move(n), std::move(v));
  }
  return 0;
}

int H2Conn::OnUpstreamFrame(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
  auto* u = static_cast<Upstream*>(user);
  H2Conn* self = u->conn;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    u->goaway = true;  // streams open go on; new ones open another session
    if (self->pool_.count(u->key) && self->pool_[u->key] == u) self->pool_.erase(u->key);
    // Destination: no other pod connection here; the client opens a new connection (and so a new one to the pod).
    if (u == self->pod_) {
      nghttp2_submit_goaway(self->client_.h2, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(self->client_.h2), NGHTTP2_NO_ERROR, nullptr, 0);
    }
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id));
  if (s == nullptr) return 0;
  bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (end) s->resp_eof = true;
  if (frame->hd.type == NGHTTP2_HEADERS && !s->resp_submitted) {
    if (s->status < 200) {  // interim (100 Continue): not relayed, the final response follows
      s->status = 0;
      s->resp_headers.clear();
      return 0;
    }
    s->load.Observe(traffic::Clock::now());
    // A retryable answer goes no further. gRPC's trailers-only UNAVAILABLE is its 503 (Envoy's "unavailable").
    int retry_status = s->status;
    if (const std::string* g = Find(s->resp_headers, "grpc-status"); end && s->grpc && g && *g == kGrpcUnavailable) {
      retry_status = 503;
    }
    if (self->CanRetry(s, TryOutcome::kStatus, retry_status)) {
      self->RetryStream(s, "response " + std::to_string(retry_status));
      return 0;
    }
    self->SubmitResponse(s, end);
    return 0;
  }
  self->Resume(s);
  return 0;
}

int H2Conn::OnUpstreamData(nghttp2_session* h2, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
  auto* u = static_cast<Upstream*>(user);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr || !s->resp_submitted) {
    nghttp2_session_consume(h2, id, len);
    return 0;
  }
  s->to_client.append(reinterpret_cast<const char*>(data), len);
  u->conn->Resume(s);
  return 0;
}

int H2Conn::OnUpstreamStreamClose(nghttp2_session* h2, int32_t id, uint32_t code, void* user) {
  auto* u = static_cast<Upstream*>(user);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr) return 0;
  s->up_closed = true;
  if ((code != NGHTTP2_NO_ERROR || !s->resp_eof) && u->conn->CanRetry(s, TryOutcome::kConnectFailed, 0)) {
    u->conn->RetryStream(s, std::string("upstream stream reset: ") + nghttp2_http2_strerror(code));
    return 0;
  }
  s->load.Release();
  if (s->to_up.size() > s->credited) {  // request bytes the upstream will never take: the client may send again
    nghttp2_session_consume(u->conn->client_.h2, s->id, s->to_up.size() - s->credited);
  }
  s->to_up.clear();
  s->credited = 0;
  if (code != NGHTTP2_NO_ERROR || !s->resp_eof) {
    u->conn->FailStream(s, 502, std::string("upstream stream reset: ") + nghttp2_http2_strerror(code),
                        code == NGHTTP2_NO_ERROR ? static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR) : code);
  }
  return 0;
}

ssize_t H2Conn::ReadRequestBody(nghttp2_session* h2, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                                nghttp2_data_source*, void* user) {
  auto* u = static_cast<Upstream*>(user);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, id));
  if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = std::min(len, s->to_up.size());
  if (n > 0) {
    std::memcpy(buf, s->to_up.data(), n);
    s->to_up.erase(0, n);
    const size_t again = std::min(n, s->credited);  // a retry's replay: credited when the first try took them
    s->credited -= again;
    if (n > again) nghttp2_session_consume(u->conn->client_.h2, s->id, n - again);
  }
  if (!s->to_up.empty()) return static_cast<ssize_t>(n);
  if (s->req_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->req_trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      auto nva = Nvs(s->req_trailers);
      nghttp2_submit_trailer(h2, id, nva.data(), nva.size());
    }
    return static_cast<ssize_t>(n);
  }
  if (n > 0) return static_cast<ssize_t>(n);
  s->up_deferred = true;
  return NGHTTP2_ERR_DEFERRED;
}

}  // namespace zm::proxy
