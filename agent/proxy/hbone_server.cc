#include "agent/proxy/hbone_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/proxy/authority.h"
#include "agent/proxy/destination_l7.h"
#include "agent/proxy/forwarded.h"
#include "agent/proxy/h2_nv.h"
#include "agent/proxy/inbound_http.h"
#include "agent/proxy/socket_util.h"
#include "common/log.h"

namespace zm::proxy {

HboneServer::HboneServer(WorkerContext& ctx, int fd, bssl::UniquePtr<SSL> ssl, const tls::SpiffeId& local_id,
                         const net::SockAddr& peer_addr, const net::SockAddr& local_addr, PeerSlot slot)
    : HboneSession(ctx, fd, std::move(ssl), /*client=*/false, peer_addr.ToString()),
      local_id_(local_id),
      peer_addr_(peer_addr),
      local_addr_(local_addr),
      slot_(std::move(slot)) {}

void HboneServer::OnEstablished() {
  std::string why;
  if (!tls::PeerIdentity(ssl_.get(), &peer_id_, &why)) {
    ProxyStats::Add(ctx_.stats.tls_failures);
    ctx_.ReportTlsFailure(TlsFailure::kPeerIdentity);
    Close("client identity: " + why);
    return;
  }
  // A verified peer that opens no stream would still hold the connection (and its descriptor) until the idle timeout.
  header_timer_ = ctx_.loop.AddTimer(ctx_.opts.header_timeout, [this] {
    header_timer_ = 0;
    if (closed()) return;
    ProxyStats::Add(ctx_.stats.hbone_header_timeouts);
    Close("no CONNECT request within the header timeout");
  });
}

void HboneServer::OnSessionClosed(bool) {
  slot_.Reset();
}

int HboneServer::OnBeginHeaders(int32_t stream_id) {
  HboneStream* s = NewStream();
  s->id = stream_id;
  nghttp2_session_set_stream_user_data(h2_, stream_id, s);
  return 0;
}

void HboneServer::Respond(HboneStream* s, int status, const std::string& why) {
  if (status != 200) {
    log::Info("hbone: CONNECT rejected", {{"peer", peer_},
                                          {"client", peer_id_.ToString()},
                                          {"target", s->target.ToString()},
                                          {"status", status},
                                          {"reason", why}});
  }
  std::string code = std::to_string(status);
  nghttp2_nv nva[] = {Nv(":status", code)};
  if (status == 200) {
    nghttp2_data_provider prd = DataProvider(s);
    nghttp2_submit_response(h2_, s->id, nva, 1, &prd);
    return;
  }
  // HEADERS with END_STREAM; the client cancels its half (our client resets it on any non-200). No RST_STREAM here:
  // nghttp2 marks the stream closing at submit time and would drop the still-queued HEADERS, and the client could
  // not tell a denial (401, 429: final) from an unreachable upstream (503: retried on another endpoint).
  nghttp2_submit_response(h2_, s->id, nva, 1, nullptr);
}

ConnRecord HboneServer::Record(const agent::MeshSnapshot* snap, const HboneStream* s, const net::SockAddr& src) const {
  ConnRecord r;
  r.flow = "hbone-inbound";
  r.reporter = Reporter::kDestination;
  // The source port comes from forwarded: for="IP:port"; without it 0 (the access log then prints the IP alone).
  r.source = MakePeer(snap, src, peer_id_.ToString());
  r.destination = MakePeer(snap, s->target, local_id_.ToString());
  r.traceparent = request_.traceparent;  // Record() runs while the stream's request is the one just received
  r.baggage = request_.baggage;
  return r;
}

void HboneServer::ReportRefused(const agent::MeshSnapshot* snap, const HboneStream* s, const net::SockAddr& src,
                                const std::string& why, const std::string* policy) {
  ConnObserver* obs = ctx_.observer();
  if (!obs) return;
  ConnRecord r = Record(snap, s, src);
  r.start = std::chrono::steady_clock::now();
  r.error = why;
  if (policy) {
    r.decision = Decision::kDeny;
    r.policy = *policy;
  }
  obs->OnClose(r);
}

bool HboneServer::ResolveSource(const agent::MeshSnapshot& snap, const HboneStream* s, net::SockAddr* src,
                                std::string* why) const {
  // A client may only speak for its own pods: a known workload address must belong to the verified identity.
  auto speaks_for_own = [&](net::IpAddr ip, const char* what) {
    const agent::Workload* w = snap.Find(ip);
    if (w != nullptr && !(snap.IdentityOf(*w) == peer_id_)) {
      *why = std::string(what) + " " + ip.ToString() + " is " + snap.IdentityOf(*w).ToString() + ", not " +
             peer_id_.ToString();
      return false;
    }
    return true;
  };
  // A client that binds its pod's address (as ztunnel and our own client do) is checked by that address too.
  if (!speaks_for_own(peer_addr_.ip, "connection source")) return false;
  *src = net::SockAddr{peer_addr_.ip, 0};
  if (request_.forwarded.empty() || !ctx_.opts.hbone_trust_forwarded) return true;
  std::vector<ForwardedNode> fors;
  std::string error;
  if (!ParseForwarded(request_.forwarded, &fors, &error)) {
    *why = "bad forwarded header: " + error;
    return false;
  }
  // The first element is the original client. unknown, obfuscated, no for=, or an address of the other family than
  // the connection's (the upstream connect binds it): the TCP peer stays the source.
  const ForwardedNode& first = fors.front();
  if (first.kind != ForwardedNode::Kind::kIpv4 && first.kind != ForwardedNode::Kind::kIpv6) return true;
  if (first.ip.family() != s->target.ip.family()) return true;
  if (!speaks_for_own(first.ip, "forwarded source")) return false;
  // Only an address the verified identity owns may be claimed: one of its pods on another node (a pod of this node
  // never arrives through a peer), and on the node the connection comes from when that is known (the client bound its
  // pod's address). Anything else (a node's address, an unused pod IP, an outside address, 0.0.0.0) is not believed:
  // the TCP peer stays the source, i.e. the peer's pod (checked above) or its node, and ipBlocks see that address.
  const agent::Workload* claimed = snap.Find(first.ip);
  const agent::Workload* tcp_peer = snap.Find(peer_addr_.ip);
  bool owned =
      claimed != nullptr && !snap.IsLocal(*claimed) && (tcp_peer == nullptr || tcp_peer->node == claimed->node);
  if (!owned) {
    log::Debug("hbone: forwarded source not owned by the peer, using the connection's source",
               {{"forwarded", first.ip.ToString()}, {"peer", peer_id_.ToString()}, {"source", src->ToString()}});
    return true;
  }
  *src = net::SockAddr{first.ip, first.has_port ? first.port : uint16_t{0}};
  return true;
}

void HboneServer::OnRequestOrResponse(HboneStream* s) {
  ctx_.loop.CancelTimer(header_timer_);  // the first complete request arrived
  header_timer_ = 0;
  auto snap = ctx_.snapshots.Get();
  net::SockAddr src = net::SockAddr{peer_addr_.ip, 0};
  auto bad_request = [&](const std::string& why) {
    ProxyStats::Add(ctx_.stats.bad_requests);
    ReportRefused(snap.get(), s, src, why);
    Respond(s, 400, why);
  };
  if (request_.method != "CONNECT") {
    bad_request("method must be CONNECT");
    return;
  }
  if (!ParseAuthority(request_.authority, &s->target)) {
    bad_request("bad :authority \"" + request_.authority + "\" (want IPv4:port or [IPv6]:port)");
    return;
  }
  // ztunnel's rule (and the certificate we presented was chosen by the dialled address): one connection, one
  // destination workload.
  if (s->target.ip != local_addr_.ip) {
    bad_request(":authority " + request_.authority + " is not the address this connection was dialled to (" +
                local_addr_.ip.ToString() + ")");
    return;
  }
  const agent::Workload* dst = snap ? snap->Find(s->target.ip) : nullptr;
  if (dst == nullptr || !snap->IsLocal(*dst) || !dst->enrolled) {
    bad_request("target is not an enrolled workload on this node");
    return;
  }
  // The client verified the certificate we presented: the target must be that identity.
  if (!(snap->IdentityOf(*dst) == local_id_)) {
    bad_request("target identity " + snap->IdentityOf(*dst).ToString() + " differs from the presented " +
                local_id_.ToString());
    return;
  }
  std::string why;
  if (!ResolveSource(*snap, s, &src, &why)) {
    bad_request(why);
    return;
  }
  net::IpAddr src_ip = src.ip;
  if (ctx_.opts.authorize) {
    AuthzRequest req{&peer_id_, src_ip, dst, s->target.port};
    AuthzDecision d = ctx_.opts.authorize(req);
    if (!d.allow) {
      ProxyStats::Add(ctx_.stats.denials);
      ReportRefused(snap.get(), s, src, "denied by policy: " + d.reason, &d.policy);
      Respond(s, 401, "denied by policy: " + d.reason);
      return;
    }
    s->per_request = d.per_request;
  }
  s->l7 = DestinationL7For(*snap, s->target, s->per_request);
  // This node is the destination: the Service's new-connection rate limit applies here.
  if (ctx_.limiter != nullptr) {
    const agent::Service* svc = traffic::RateLimiter::LimitedServiceOf(*snap, s->target.ip, s->target.port);
    if (svc != nullptr && !ctx_.limiter->Allow(*svc, peer_id_.ToString())) {
      ProxyStats::Add(ctx_.stats.ratelimit_rejections);
      ReportRefused(snap.get(), s, src, "rate limited: service " + svc->Key());
      Respond(s, 429, "rate limited: service " + svc->Key());
      return;
    }
  }
  std::string error;
  // From the client's own port when the peer named it (forwarded for="IP:port"; the address is checked above).
  int fd = StartConnect(s->target, src_ip, ctx_.opts.source_bind, ctx_.opts.socket_mark, &error, src.port);
  if (fd < 0) {
    ProxyStats::Add(ctx_.stats.upstream_failures);
    ReportRefused(snap.get(), s, src, "upstream: " + error);
    Respond(s, 503, error);
    return;
  }
  if (ctx_.observer()) s->track.Open(ctx_.observer(), Record(snap.get(), s, src));
  s->client = src;
  s->connecting = true;
  AddStreamFd(s, fd);
  s->timer = ctx_.loop.AddTimer(ctx_.opts.connect_timeout, [this, s] {
    s->timer = 0;
    if (!s->connecting) return;
    s->connecting = false;
    OnUpstreamConnect(s, ETIMEDOUT);
    Flush();
  });
}

void HboneServer::OnUpstreamConnect(HboneStream* s, int err) {
  if (err != 0) {
    ProxyStats::Add(ctx_.stats.upstream_failures);
    s->track.SetError(std::string("upstream ") + s->target.ToString() + ": " + std::strerror(err));
    ctx_.loop.Remove(s->fd);
    close(s->fd);
    s->fd = -1;
    Respond(s, 503, std::string("upstream ") + s->target.ToString() + ": " + std::strerror(err));
    return;
  }
  if (s->l7 != DestinationL7::kNone && !InsertInboundHttp(s)) {
    ProxyStats::Add(ctx_.stats.upstream_failures);
    s->track.SetError("socketpair failed");
    ctx_.loop.Remove(s->fd);
    close(s->fd);
    s->fd = -1;
    Respond(s, 503, "socketpair failed");
    return;
  }
  // Plain L4 to the pod: the stream reads and writes the socket itself, so it may skip TCP (sockmap).
  if (s->l7 == DestinationL7::kNone && ctx_.opts.accelerate) ctx_.opts.accelerate(s->fd);
  ProxyStats::Add(ctx_.stats.hbone_streams_accepted);
  s->established = true;
  s->tcp_writable = true;
  Respond(s, 200, "");
  WriteTcp(s);
  ReadTcp(s);
  Touch(s);
  SettleAll();
}

bool HboneServer::InsertInboundHttp(HboneStream* s) {
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) return false;
  auto snap = ctx_.snapshots.Get();
  const agent::Workload* dst = snap ? snap->Find(s->target.ip) : nullptr;
  if (dst == nullptr) {  // the pod left the configuration while connecting
    close(sp[0]);
    close(sp[1]);
    return false;
  }
  // The stream relays into our end of the pair; the other end and the pod connection go to the per-request check.
  int pod = s->fd;
  ctx_.loop.Remove(pod);
  InboundHttp::Params p;
  p.snap = snap;
  p.destination = dst;
  p.has_source_id = true;
  p.source_id = peer_id_;
  p.src = s->client;
  p.dst = s->target;
  p.what = "hbone-http " + s->client.ToString() + "->" + s->target.ToString();
  p.enforce = s->per_request;
  StartDestinationL7(ctx_, s->l7, sp[1], pod, /*up_connecting=*/false, std::move(p));
  s->fd = -1;
  AddStreamFd(s, sp[0]);
  return true;
}

void HboneServer::Drain() {
  if (state_ != State::kReady) return;
  // A graceful GOAWAY (last stream ID 2^31-1): the peer opens no new stream here but every stream it already sent is
  // still served, so none is refused in flight. New connections go to a fresh session, i.e. the next agent.
  nghttp2_submit_shutdown_notice(h2_);
  Flush();
}

}  // namespace zm::proxy
