#include "agent/proxy/worker.h"

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "agent/proxy/destination_l7.h"
#include "agent/proxy/h2_conn.h"
#include "agent/proxy/hbone_server.h"
#include "agent/proxy/http1_conn.h"
#include "agent/proxy/inbound_http.h"
#include "agent/proxy/socket_util.h"
#include "agent/proxy/splice_relay.h"
#include "agent/traffic/router.h"
#include "common/log.h"

namespace zm::proxy {
namespace {

constexpr int kAcceptBatch = 64;
// A new outbound or HBONE connection goes to a sibling only when that one carries at least this much less (HBONE
// sessions + streams): with 1, a connection-rate burst would bounce between the workers at a cross-thread wake-up
// each; with 2, eight bulk streams that arrive together still end up four and four.
constexpr int kHandOffMargin = 2;
// Built-in denials get these names as their "policy" (metrics label, access log).
constexpr std::string_view kPolicyFailClosed = "builtin:fail-closed";
constexpr std::string_view kPolicyStrictMode = "builtin:strict-mode";
constexpr auto kHeldPoll = std::chrono::milliseconds(100);
constexpr auto kShedLogInterval = std::chrono::seconds(5);
constexpr auto kBlockTrimPeriod = std::chrono::seconds(1);

// Buffer blocks a burst left cached go back to the kernel once a whole period passed without a use for them: one to
// two periods after the burst. A flow that pauses for less than a period keeps its blocks. The large buffers
// (page_buffers.h) give back the pages the period did not need.
void ArmBlockTrim(WorkerContext& ctx) {
  ctx.loop.AddTimer(kBlockTrimPeriod, [&ctx] {
    ctx.blocks.Trim();
    ctx.buffers.Trim();
    ArmBlockTrim(ctx);
  });
}

}  // namespace

Worker::Worker(const ProxyOptions& opts, ProxyStats& stats, agent::SnapshotHolder& snaps, agent::CertStore& certs,
               const int listener_fds[kListenerCount], traffic::Balancer* balancer, traffic::RateLimiter* limiter,
               PeerLimit* peers)
    : ctx_(opts, stats, snaps, certs), pool_(ctx_), upstreams_(ctx_.loop, stats) {
  ctx_.pool = &pool_;
  ctx_.upstreams = &upstreams_;
  ctx_.balancer = balancer;
  ctx_.limiter = limiter;
  ctx_.peers = peers;
  for (int i = 0; i < kListenerCount; ++i) {
    listeners_[i].worker = this;
    listeners_[i].kind = static_cast<ListenerKind>(i % 3);
    listeners_[i].fd = listener_fds[i];
    if (listener_fds[i] < 0) continue;  // no IPv6 on this node
    // Level-triggered + exclusive: one worker wakes per connection burst, the others keep sleeping.
    ctx_.loop.Add(listener_fds[i], EPOLLIN | EPOLLEXCLUSIVE, &listeners_[i]);
  }
  ArmBlockTrim(ctx_);
}

Worker::~Worker() {
  Stop();
}

void Worker::Start() {
  thread_ = std::thread([this] {
    ctx_.loop.Run();
    Shutdown();
  });
}

void Worker::Drain() {
  ctx_.loop.Post([this] {
    std::vector<Closable*> all(ctx_.live.begin(), ctx_.live.end());  // Drain() may close (and unlist) one
    for (Closable* c : all) {
      if (ctx_.live.count(c)) c->Drain();
    }
  });
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  ctx_.loop.Stop();
  thread_.join();
}

void Worker::OnSnapshotChanged() {
  ctx_.loop.Post([this] { RecheckHeld(); });
}

void Worker::Shutdown() {
  for (auto& h : held_) ResetAndClose(h.fd);
  held_.clear();
  ctx_.loop.CancelTimer(held_timer_);
  // ForceClose() removes the object from |live| (now or when the garbage runs): iterate over a copy.
  std::vector<Closable*> all(ctx_.live.begin(), ctx_.live.end());
  for (Closable* c : all) {
    if (ctx_.live.count(c)) c->ForceClose();
  }
  for (auto& l : listeners_) {
    if (l.fd >= 0) ctx_.loop.Remove(l.fd);
  }
  ctx_.loop.RunGarbage();  // now, while the pool and block cache the objects use still exist
}

void Worker::Accept(Listener& l) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN (another worker took it) or a transient error
    std::optional<net::SockAddr> src = net::SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&peer), len);
    net::SockAddr dst;
    bool ok = ctx_.opts.original_dst ? ctx_.opts.original_dst(fd, &dst) : LocalAddr(fd, &dst);
    if (!ok || !src || src->ip.family() != dst.ip.family()) {
      log::Warn("accepted a connection without an IP original destination", {{"listener", static_cast<int>(l.kind)}});
      ResetAndClose(fd);
      continue;
    }
    Worker* to = l.kind == ListenerKind::kPlaintext ? this : PickWorker();
    if (to != this) {
      HandOff(to, l.kind, fd, *src, dst);
    } else {
      Dispatch(l.kind, fd, *src, dst);
    }
  }
}

void Worker::Dispatch(ListenerKind kind, int fd, const net::SockAddr& src, const net::SockAddr& dst) {
  switch (kind) {
    case ListenerKind::kOutbound:
      ProxyStats::Add(ctx_.stats.outbound_accepted);
      Outbound(fd, src, dst, false);
      break;
    case ListenerKind::kHbone:
      ProxyStats::Add(ctx_.stats.hbone_accepted);
      Inbound(fd, src, dst, false);
      break;
    case ListenerKind::kPlaintext:
      ProxyStats::Add(ctx_.stats.plaintext_accepted);
      Plaintext(fd, src, dst);
      break;
  }
}

Worker* Worker::PickWorker() {
  Worker* best = this;
  int least = ctx_.load.load(std::memory_order_relaxed) - kHandOffMargin;
  for (Worker* w : siblings_) {
    if (w == this) continue;
    int load = w->ctx_.load.load(std::memory_order_relaxed);
    if (load <= least) {
      best = w;
      least = load;
    }
  }
  return best;
}

void Worker::HandOff(Worker* to, ListenerKind kind, int fd, const net::SockAddr& src, const net::SockAddr& dst) {
  // Counted on |to| at once, so a burst spreads instead of following a stale figure. If |to| stops before it runs
  // the task, the task's destruction resets the connection.
  to->ctx_.load.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<int> owned(new int(fd), [](int* p) {
    if (*p >= 0) ResetAndClose(*p);
    delete p;
  });
  to->ctx_.loop.Post([to, kind, owned, src, dst] {
    to->ctx_.load.fetch_sub(1, std::memory_order_relaxed);
    int fd = std::exchange(*owned, -1);
    if (fd >= 0) to->Dispatch(kind, fd, src, dst);
  });
}

ConnRecord Worker::Record(const agent::MeshSnapshot* snap, const char* flow, const net::SockAddr& src,
                          const net::SockAddr& dst) const {
  ConnRecord r;
  r.flow = flow;
  // The HBONE and plaintext listeners accept for a local destination: that side reports. Plaintext carries no identity.
  std::string_view f(flow);
  bool inbound = f == "hbone" || f.starts_with("plaintext");
  r.reporter = inbound ? Reporter::kDestination : Reporter::kSource;
  r.source = MakePeer(snap, src, inbound ? std::string() : PrincipalOf(snap, src.ip));
  r.destination = MakePeer(snap, dst, PrincipalOf(snap, dst.ip));
  return r;
}

void Worker::Refuse(int fd, const char* what, const net::SockAddr& src, const net::SockAddr& dst,
                    const std::string& why, std::optional<std::string> denied_by) {
  log::Info("connection refused", {{"flow", what}, {"src", src.ToString()}, {"dst", dst.ToString()}, {"reason", why}});
  ResetAndClose(fd);
  ProxyStats::Add(ctx_.stats.connections_closed);
  if (ConnObserver* obs = ctx_.observer()) {
    auto snap = ctx_.snapshots.Get();
    ConnRecord r = Record(snap.get(), what, src, dst);
    r.start = std::chrono::steady_clock::now();
    r.error = why;
    if (denied_by) {
      r.decision = Decision::kDeny;
      r.policy = std::move(*denied_by);
    }
    obs->OnClose(r);
  }
}

void Worker::Relay(int downstream, const net::SockAddr& src, const net::SockAddr& dst, const char* what,
                   const agent::MeshSnapshot* snap, bool same_node, ServiceConn svc) {
  std::string error;
  int up = StartConnect(dst, src.ip, ctx_.opts.source_bind, ctx_.opts.socket_mark, &error);
  if (up < 0) {
    ProxyStats::Add(ctx_.stats.upstream_failures);
    svc.lease.Failed();
    if (svc.retry) {
      svc.retry(downstream);
      return;
    }
    Refuse(downstream, what, src, dst, error);
    return;
  }
  ConnRecord rec;
  if (ctx_.observer()) {
    rec = Record(snap, what, src, dst);
    rec.same_node = same_node;
  }
  SpliceRelay::Start(ctx_, downstream, up, std::string(what) + " " + src.ToString() + "->" + dst.ToString(),
                     std::move(rec), std::move(svc));
}

void Worker::RelayHttp(int downstream, const net::SockAddr& src, const net::SockAddr& dst, const char* what,
                       std::shared_ptr<const agent::MeshSnapshot> snap, const tls::SpiffeId* src_id, bool enforce,
                       DestinationL7 l7) {
  std::string error;
  int up = StartConnect(dst, src.ip, ctx_.opts.source_bind, ctx_.opts.socket_mark, &error);
  if (up < 0) {
    ProxyStats::Add(ctx_.stats.upstream_failures);
    Refuse(downstream, what, src, dst, error);
    return;
  }
  InboundHttp::Params p;
  if (ctx_.observer()) {
    p.conn = Record(snap.get(), what, src, dst);
    p.conn.same_node = src_id != nullptr;
  }
  p.destination = snap->Find(dst.ip);
  p.snap = std::move(snap);
  p.has_source_id = src_id != nullptr;
  if (src_id != nullptr) p.source_id = *src_id;
  p.src = src;
  p.dst = dst;
  p.what = std::string(what) + "-http " + src.ToString() + "->" + dst.ToString();
  p.enforce = enforce;
  StartDestinationL7(ctx_, l7, downstream, up, /*up_connecting=*/true, std::move(p));
}

Worker::ServiceAttempt Worker::NewAttempt(std::shared_ptr<const agent::MeshSnapshot> snap, const net::SockAddr& src,
                                          const net::SockAddr& vip, bool source_in_mesh) {
  ServiceAttempt a;
  a.snap = std::move(snap);
  a.src = src;
  a.vip = vip;
  a.source_in_mesh = source_in_mesh;
  return a;
}

void Worker::ToService(int fd, ServiceAttempt a) {
  const agent::MeshSnapshot& snap = *a.snap;
  traffic::Route route;
  std::string why;
  traffic::RouteStatus st;
  if (a.backend == nullptr) {
    const agent::Service* svc = snap.FindService(a.vip.ip);
    // The one branch between the L4 and L7 paths, at connection setup: HTTP ports (HTTP/1.1, h2c, gRPC) are routed
    // per request.
    const agent::ServicePortMap* pm = svc->FindPort(a.vip.port);
    if (pm != nullptr && pm->protocol != agent::PortProtocol::kTcp) {
      ToHttpService(fd, std::move(a), svc, pm->protocol != agent::PortProtocol::kHttp);
      return;
    }
    st = traffic::RouteToService(*ctx_.balancer, snap, *svc, a.vip.port, a.tried, &route, &why, a.src.ip.family());
  } else {
    route.service = a.backend;
    route.service_port = a.backend_port;
    st = traffic::Reroute(*ctx_.balancer, snap, a.tried, &route, &why, false, a.src.ip.family());
  }
  if (st != traffic::RouteStatus::kOk) {
    ProxyStats::Add(st == traffic::RouteStatus::kOverflow ? ctx_.stats.circuit_breaker_rejections
                                                          : ctx_.stats.service_no_endpoint);
    if (!a.first && !a.tried.empty()) why += " (after " + std::to_string(a.tried.size()) + " failed attempts)";
    Refuse(fd, "service", a.src, a.vip, why);
    return;
  }
  if (a.first) ProxyStats::Add(ctx_.stats.service_connections);
  const agent::ServiceTrafficPolicy& pol = route.service->policy;
  ServiceConn sc;
  sc.lease = std::move(route.lease);
  sc.connect_timeout = pol.connect_timeout;
  sc.idle_timeout = pol.idle_timeout;
  if (a.first) a.retries_left = pol.retry_attempts;
  if (a.retries_left > 0) {
    ServiceAttempt next = a;
    next.first = false;
    next.backend = route.service;
    next.backend_port = route.service_port;
    next.tried.push_back(route.endpoint->ip);
    --next.retries_left;
    sc.retry = [this, next = std::move(next)](int down) {
      ProxyStats::Add(ctx_.stats.connect_retries);
      ToService(down, next);
    };
  }
  Deliver(fd, a, route.addr, std::move(sc));
}

void Worker::Deliver(int fd, const ServiceAttempt& a, const net::SockAddr& ep, ServiceConn sc) {
  const agent::MeshSnapshot& snap = *a.snap;
  const agent::Workload* to = snap.Find(ep.ip);
  if (!a.source_in_mesh || to == nullptr || !to->enrolled) {
    Relay(fd, a.src, ep, "service-direct", &snap, false, std::move(sc));
    return;
  }
  const agent::Workload* from = snap.Find(a.src.ip);
  tls::SpiffeId src_id = snap.IdentityOf(*from);
  if (snap.IsLocal(*to)) {
    bool per_request = false;
    if (ctx_.opts.authorize) {
      AuthzDecision d = ctx_.opts.authorize({&src_id, a.src.ip, to, ep.port});
      if (!d.allow) {
        ProxyStats::Add(ctx_.stats.denials);
        Refuse(fd, "same-node", a.src, ep, "denied by policy: " + d.reason, d.policy);
        return;
      }
      per_request = d.per_request;
    }
    if (!PassRateLimit(fd, snap, a.src, ep, src_id)) return;
    ProxyStats::Add(ctx_.stats.same_node);
    if (DestinationL7 l7 = DestinationL7For(snap, ep, per_request); l7 != DestinationL7::kNone) {
      RelayHttp(fd, a.src, ep, "same-node", a.snap, &src_id, per_request, l7);
      return;
    }
    Relay(fd, a.src, ep, "same-node", &snap, /*same_node=*/true, std::move(sc));
    return;
  }
  auto src_tls = ctx_.certs.Get(src_id);
  if (!src_tls) {
    ProxyStats::Add(ctx_.stats.tls_failures);
    ctx_.ReportTlsFailure(TlsFailure::kNoCertificate);
    Refuse(fd, "outbound", a.src, ep, "no certificate for " + src_id.ToString());
    return;
  }
  TuneStream(fd);
  ConnRecord rec;
  if (ctx_.observer()) rec = Record(&snap, "hbone-outbound", a.src, ep);
  // A retry could hand the socket to a splice relay, which cannot read redirected bytes: only retry-less ones.
  if (ctx_.opts.accelerate && !sc.retry) ctx_.opts.accelerate(fd);
  pool_.Open(fd, a.src, ep, *src_tls, snap.IdentityOf(*to), std::move(rec), std::move(sc));
}

void Worker::ToHttpService(int fd, ServiceAttempt a, const agent::Service* svc, bool h2) {
  ProxyStats::Add(ctx_.stats.service_connections);
  uint16_t port = a.vip.port;
  std::string what = (h2 ? "h2 " : "http ") + a.src.ToString() + "->" + a.vip.ToString();
  auto attempt = std::make_shared<const ServiceAttempt>(std::move(a));
  auto open = [this, attempt](traffic::Route route, std::string* why) -> int {
    // Our end speaks HTTP; the other end goes where an L4 connection to the endpoint would (the tunnel, identity
    // and policy are the L4 path's).
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
      *why = "socketpair failed";
      return -1;
    }
    const agent::ServiceTrafficPolicy& pol = route.service->policy;
    ServiceConn sc;
    sc.lease = std::move(route.lease);
    sc.connect_timeout = pol.connect_timeout;
    sc.idle_timeout = pol.idle_timeout;
    Deliver(sp[1], *attempt, route.addr, std::move(sc));
    return sp[0];
  };
  if (h2) {
    H2Conn::Start(ctx_, fd, attempt->snap, svc, port, attempt->src, std::move(open), std::move(what));
    return;
  }
  Http1Conn::Start(ctx_, fd, attempt->snap, svc, port, attempt->src, std::move(open), std::move(what));
}

void Worker::Outbound(int fd, const net::SockAddr& src, const net::SockAddr& dst, bool hold_expired) {
  auto snap = ctx_.snapshots.Get();
  if (!hold_expired && !SourceReady(snap.get(), src.ip)) {
    // Captured before we know the pod (new pod, config in flight), or before its certificate is issued (a just
    // restarted agent): hold it, never let it out in plaintext and never refuse what moments will fix.
    Hold(fd, src, dst, /*inbound=*/false);
    return;
  }
  const agent::Workload* from = snap ? snap->Find(src.ip) : nullptr;
  if (from == nullptr || !snap->IsLocal(*from)) {
    if (snap && snap->default_mode() == agent::MeshMode::kPermissive) {
      if (snap->FindService(dst.ip) != nullptr) {
        ToService(fd, NewAttempt(snap, src, dst, /*source_in_mesh=*/false));
        return;
      }
      ProxyStats::Add(ctx_.stats.passthrough);
      Relay(fd, src, dst, "outbound-unknown-permissive", snap.get());
      return;
    }
    ProxyStats::Add(ctx_.stats.denials);
    Refuse(fd, "outbound", src, dst, "source is not a known workload of this node (STRICT: fail closed)",
           std::string(kPolicyFailClosed));
    return;
  }
  if (snap->FindService(dst.ip) != nullptr) {
    // The capture hook runs before any NAT: the original destination is the VIP.
    ToService(fd, NewAttempt(snap, src, dst, /*source_in_mesh=*/from->enrolled));
    return;
  }
  if (!from->enrolled) {
    ProxyStats::Add(ctx_.stats.passthrough);
    Relay(fd, src, dst, "outbound-unenrolled-source", snap.get());
    return;
  }
  const agent::Workload* to = snap->Find(dst.ip);
  if (to == nullptr || !to->enrolled) {
    ProxyStats::Add(ctx_.stats.passthrough);
    Relay(fd, src, dst, "passthrough", snap.get());
    return;
  }
  tls::SpiffeId src_id = snap->IdentityOf(*from);
  if (snap->IsLocal(*to)) {
    // Same node: no wire, same policy.
    bool per_request = false;
    if (ctx_.opts.authorize) {
      AuthzDecision d = ctx_.opts.authorize({&src_id, src.ip, to, dst.port});
      if (!d.allow) {
        ProxyStats::Add(ctx_.stats.denials);
        Refuse(fd, "same-node", src, dst, "denied by policy: " + d.reason, d.policy);
        return;
      }
      per_request = d.per_request;
    }
    if (!PassRateLimit(fd, *snap, src, dst, src_id)) return;
    ProxyStats::Add(ctx_.stats.same_node);
    if (DestinationL7 l7 = DestinationL7For(*snap, dst, per_request); l7 != DestinationL7::kNone) {
      RelayHttp(fd, src, dst, "same-node", snap, &src_id, per_request, l7);
      return;
    }
    Relay(fd, src, dst, "same-node", snap.get(), /*same_node=*/true);
    return;
  }
  auto src_tls = ctx_.certs.Get(src_id);
  if (!src_tls) {
    ProxyStats::Add(ctx_.stats.tls_failures);
    ctx_.ReportTlsFailure(TlsFailure::kNoCertificate);
    Refuse(fd, "outbound", src, dst, "no certificate for " + src_id.ToString());
    return;
  }
  TuneStream(fd);
  ConnRecord rec;
  if (ctx_.observer()) rec = Record(snap.get(), "hbone-outbound", src, dst);
  if (ctx_.opts.accelerate) ctx_.opts.accelerate(fd);
  pool_.Open(fd, src, dst, *src_tls, snap->IdentityOf(*to), std::move(rec));
}

void Worker::Inbound(int fd, const net::SockAddr& src, const net::SockAddr& dst, bool hold_expired) {
  auto snap = ctx_.snapshots.Get();
  if (!hold_expired && !DestinationReady(snap.get(), dst.ip)) {
    // The pinned pod map steered it here for an enrolled pod, but this agent (just restarted) has no configuration
    // or no certificate for it yet: hold the TCP connection (the peer's TLS handshake waits) rather than refuse it.
    Hold(fd, src, dst, /*inbound=*/true);
    return;
  }
  const agent::Workload* to = snap ? snap->Find(dst.ip) : nullptr;
  if (to == nullptr || !snap->IsLocal(*to) || !to->enrolled) {
    Refuse(fd, "hbone", src, dst, "destination is not an enrolled workload on this node");
    return;
  }
  tls::SpiffeId id = snap->IdentityOf(*to);
  auto tls = ctx_.certs.Get(id);
  if (!tls) {
    ProxyStats::Add(ctx_.stats.tls_failures);
    ctx_.ReportTlsFailure(TlsFailure::kNoCertificate);
    Refuse(fd, "hbone", src, dst, "no certificate for " + id.ToString());
    return;
  }
  PeerSlot slot;
  if (ctx_.peers != nullptr) {
    if (!ctx_.peers->Acquire(src.ip)) {
      Shed(fd, "hbone", src, dst, "too many HBONE connections from this peer address (max_connections_per_peer)",
           ctx_.stats.hbone_peer_limit_refused);
      return;
    }
    slot = PeerSlot(ctx_.peers, src.ip);
  }
  bssl::UniquePtr<SSL> ssl(SSL_new(tls->server_ctx.get()));
  if (!ssl) {
    Refuse(fd, "hbone", src, dst, "SSL_new failed");
    return;
  }
  new HboneServer(ctx_, fd, std::move(ssl), id, src, dst, std::move(slot));
}

void Worker::Plaintext(int fd, const net::SockAddr& src, const net::SockAddr& dst) {
  auto snap = ctx_.snapshots.Get();
  const agent::Workload* to = snap ? snap->Find(dst.ip) : nullptr;
  if (to == nullptr || !snap->IsLocal(*to) || !to->enrolled) {
    Refuse(fd, "plaintext", src, dst, "destination is not an enrolled workload on this node");
    return;
  }
  if (to->mode == agent::MeshMode::kStrict) {
    ProxyStats::Add(ctx_.stats.denials);
    Refuse(fd, "plaintext", src, dst, "destination is STRICT: plaintext refused", std::string(kPolicyStrictMode));
    return;
  }
  bool per_request = false;
  if (ctx_.opts.authorize) {
    AuthzDecision d = ctx_.opts.authorize({nullptr, src.ip, to, dst.port});
    if (!d.allow) {
      ProxyStats::Add(ctx_.stats.denials);
      Refuse(fd, "plaintext", src, dst, "denied by policy: " + d.reason, d.policy);
      return;
    }
    per_request = d.per_request;
  }
  if (DestinationL7 l7 = DestinationL7For(*snap, dst, per_request); l7 != DestinationL7::kNone) {
    RelayHttp(fd, src, dst, "plaintext-permissive", snap, nullptr, per_request, l7);
    return;
  }
  Relay(fd, src, dst, "plaintext-permissive", snap.get());
}

bool Worker::PassRateLimit(int fd, const agent::MeshSnapshot& snap, const net::SockAddr& src, const net::SockAddr& dst,
                           const tls::SpiffeId& src_id) {
  if (ctx_.limiter == nullptr) return true;
  const agent::Service* svc = traffic::RateLimiter::LimitedServiceOf(snap, dst.ip, dst.port);
  if (svc == nullptr || ctx_.limiter->Allow(*svc, src_id.ToString())) return true;
  ProxyStats::Add(ctx_.stats.ratelimit_rejections);
  Refuse(fd, "same-node", src, dst, "rate limited: service " + svc->Key());
  return false;
}

bool Worker::SourceReady(const agent::MeshSnapshot* snap, const net::IpAddr& src) const {
  const agent::Workload* w = snap ? snap->Find(src) : nullptr;
  return w != nullptr && snap->IsLocal(*w) && (!w->enrolled || ctx_.certs.Get(snap->IdentityOf(*w)));
}

bool Worker::DestinationReady(const agent::MeshSnapshot* snap, const net::IpAddr& dst) const {
  if (snap == nullptr) return false;
  const agent::Workload* to = snap->Find(dst);
  return to == nullptr || !snap->IsLocal(*to) || !to->enrolled || ctx_.certs.Get(snap->IdentityOf(*to));
}

void Worker::Hold(int fd, const net::SockAddr& src, const net::SockAddr& dst, bool inbound) {
  if (ctx_.opts.max_held_connections != 0 && held_.size() >= ctx_.opts.max_held_connections) {
    // A flood of connections nobody can serve yet (e.g. from a pod the agent does not know) must not exhaust the
    // agent's descriptors; a refused client retries, as it would after any reset.
    Shed(fd, inbound ? "hbone" : "outbound", src, dst, "too many connections held (max_held_connections)",
         ctx_.stats.held_refused);
    return;
  }
  Held h{fd, src, dst, EventLoop::Clock::now() + ctx_.opts.unknown_source_hold, inbound};
  ProxyStats::Add(ctx_.stats.held_unknown_source);
  held_.push_back(h);
  ArmHeldTimer();
}

void Worker::Shed(int fd, const char* what, const net::SockAddr& src, const net::SockAddr& dst, const char* why,
                  std::atomic<uint64_t>& counter) {
  ProxyStats::Add(counter);  // before the reset: whoever sees the refusal sees it counted
  ProxyStats::Add(ctx_.stats.connections_closed);
  ResetAndClose(fd);
  ++shed_since_log_;
  auto now = EventLoop::Clock::now();
  if (now - last_shed_log_ < kShedLogInterval) return;
  log::Warn("connections refused: over a proxy limit", {{"flow", what},
                                                        {"src", src.ToString()},
                                                        {"dst", dst.ToString()},
                                                        {"reason", why},
                                                        {"refused_since_last_log", shed_since_log_}});
  last_shed_log_ = now;
  shed_since_log_ = 0;
}

void Worker::Release(const Held& h) {
  if (h.inbound) {
    Inbound(h.fd, h.src, h.dst, /*hold_expired=*/true);
  } else {
    Outbound(h.fd, h.src, h.dst, /*hold_expired=*/true);
  }
}

void Worker::ArmHeldTimer() {
  if (held_timer_ != 0) return;
  held_timer_ = ctx_.loop.AddTimer(kHeldPoll, [this] {
    held_timer_ = 0;
    RecheckHeld();
  });
}

void Worker::RecheckHeld() {
  if (held_.empty()) return;
  auto now = EventLoop::Clock::now();
  auto snap = ctx_.snapshots.Get();
  std::vector<Held> still;
  std::vector<Held> go;
  for (auto& h : held_) {
    bool ready = h.inbound ? DestinationReady(snap.get(), h.dst.ip) : SourceReady(snap.get(), h.src.ip);
    if (ready || h.deadline <= now) {
      go.push_back(h);
    } else {
      still.push_back(h);
    }
  }
  held_.swap(still);
  for (auto& h : go) Release(h);
  if (!held_.empty()) ArmHeldTimer();
}

}  // namespace zm::proxy
