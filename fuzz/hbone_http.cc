// What an HBONE client sends the inbound side (port 15008) once its mTLS handshake succeeded: HTTP/2 frames, CONNECT
// requests with their headers (:authority, forwarded, traceparent, baggage) and the tunnelled bytes. Any workload of
// the mesh, or anyone holding a mesh certificate, is such a client.
// The product's own proxy::HboneServer runs unchanged on one end of a socketpair, with a real TLS 1.3 handshake
// (the product's contexts, from InMemoryCertStore) against a client here that then writes the HTTP/2 preface and the
// fuzzer's bytes. This harness plays the event loop: it calls the session's and the streams' OnIo itself (level-
// triggered, the product's loop is edge-triggered); timers (connect/handshake/idle/keepalive) never fire. Upstream
// connects are real TCP connects, inside a private network namespace (when this process may create one) where only
// the harness listens, on 127.0.0.1:80 (the dialled pod); other ports refuse (503), port 23 is denied by policy (401).
// Besides "no crash, no leak, no UB", it checks the inbound side's security promises on every relayed stream: the
// destination is the dialled workload with the presented identity, the source principal is the verified client, and
// the source address the pod sees is the TCP peer or a pod of that identity on the peer's node (never a forwarded
// address the client does not own).
// Input: one flag byte, then the bytes after the preface. Flags: bits 0-1 what the pod does (0 echo, 1 echo then
// FIN, 2 reset, 3 nothing); bits 2-3 how the client writes (0 all at once, 1/2/3 in 9/64/512-byte pieces with a round
// of the event loop between); bit 4 hbone_trust_forwarded off; bit 5 the client closes TLS at the end (else the proxy
// is stopping: ForceClose); bit 6 the agent drains (GOAWAY) halfway.
#include <arpa/inet.h>
#include <net/if.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "agent/proxy/hbone_server.h"
#include "agent/proxy/socket_util.h"
#include "agent/state/cert_store.h"
#include "common/log.h"
#include "tests/unit/proxy/test_certs.h"

namespace {

namespace proxy = zm::proxy;
namespace agent = zm::agent;
namespace net = zm::net;

constexpr const char* kTd = "cluster.local";
constexpr uint16_t kPodPort = 80;
constexpr uint16_t kDeniedPort = 23;

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

// Exposes the session's state and streams to the harness (which plays the event loop); nothing else changes.
class FuzzServer : public proxy::HboneServer {
 public:
  using HboneServer::HboneServer;
  bool ready() const { return state_ == State::kReady; }
  std::vector<proxy::HboneStream*> streams() const { return {streams_.begin(), streams_.end()}; }
};

// Checks every relayed stream (OnOpen runs only once the server decided to relay it).
class CheckingObserver : public proxy::ConnObserver {
 public:
  void OnOpen(proxy::ConnRecord& r) override {
    const std::string client = "spiffe://cluster.local/ns/shop/sa/client";
    if (r.destination.addr.ip != Ip("127.0.0.1") || r.destination.addr.port == kDeniedPort ||
        r.destination.principal != "spiffe://cluster.local/ns/shop/sa/server" || r.source.principal != client ||
        !AllowedSource(r.source.addr.ip)) {
      std::fprintf(stderr, "relayed a stream the server must refuse: %s -> %s\n", r.source.addr.ToString().c_str(),
                   r.destination.addr.ToString().c_str());
      std::abort();
    }
  }
  void OnProgress(proxy::ConnRecord&) override {}
  void OnClose(proxy::ConnRecord&) override {}
  void OnTlsFailure(proxy::TlsFailure why) override {
    std::fprintf(stderr, "TLS failure %s on a handshake that must succeed\n", proxy::TlsFailureName(why));
    std::abort();
  }
  // The TCP peer itself, or the client identity's other pod on the peer's node.
  static bool AllowedSource(const net::IpAddr& ip) { return ip == Ip("127.0.1.1") || ip == Ip("127.0.1.3"); }
};

struct Fixture {
  bool netns = false;
  int listener = -1;
  proxy::ProxyOptions opts;
  proxy::ProxyStats stats;
  agent::SnapshotHolder snapshots;
  agent::InMemoryCertStore certs;
  bssl::UniquePtr<SSL_CTX> client_ctx;
  zm::tls::SpiffeId server_id{kTd, "shop", "server"};
};

bool LoopbackUp() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
  bool ok = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

agent::Workload MakePod(const char* name, const char* sa, const char* ip, const char* node) {
  agent::Workload w;
  w.name = name;
  w.ns = "shop";
  w.service_account = sa;
  w.node = node;
  w.ips = {Ip(ip)};
  w.enrolled = true;
  return w;
}

Fixture& Get() {
  static Fixture* f = [] {
    auto* x = new Fixture;
    zm::log::SetMinLevel(static_cast<zm::log::Level>(4));  // every line off: refusals are expected here
    signal(SIGPIPE, SIG_IGN);                              // as mesh-agent does: the client writes to a closed session
    // A private network namespace: upstream connects then reach nothing but this harness.
    x->netns = unshare(CLONE_NEWNET) == 0 && LoopbackUp();
    if (!x->netns)
      std::fprintf(stderr, "fuzz_hbone_http: no private network namespace (not root?): 200s not covered\n");
    std::string error;
    x->listener = proxy::MakeListener(Ip("127.0.0.1"), x->netns ? kPodPort : 0, false, 0, &error);
    if (x->listener < 0) std::abort();
    const uint16_t pod_port = proxy::LocalPort(x->listener);
    x->opts.source_bind = x->netns ? proxy::SourceBind::kTransparent : proxy::SourceBind::kPlain;
    x->opts.observer = std::make_shared<CheckingObserver>();
    x->opts.authorize = [netns = x->netns, pod_port](const proxy::AuthzRequest& r) {
      if (r.port == kDeniedPort || (!netns && r.port != pod_port)) return proxy::AuthzDecision{false, "port", "deny"};
      return proxy::AuthzDecision{};
    };
    // node1 runs the dialled pod (server) and another; the client's pods run on node2 (and one on node3).
    x->snapshots.Set(std::make_shared<agent::MeshSnapshot>(
        kTd, "node1", agent::MeshMode::kStrict,
        std::vector<agent::Workload>{
            MakePod("server", "server", "127.0.0.1", "node1"), MakePod("local-other", "other", "127.0.0.2", "node1"),
            MakePod("client", "client", "127.0.1.1", "node2"), MakePod("other", "other", "127.0.1.2", "node2"),
            MakePod("client-2", "client", "127.0.1.3", "node2"), MakePod("client-3", "client", "127.0.1.4", "node3")}));
    zm::testing::TestCa ca = zm::testing::MakeCa("mesh root");
    std::vector<agent::IdentityMaterial> ids(1);
    ids[0].id = x->server_id;
    ids[0].creds = zm::testing::MakeLeaf(ca, {x->server_id.ToString()});
    if (!x->certs.Replace(kTd, zm::testing::Roots(ca), std::move(ids), &error)) std::abort();
    zm::tls::Credentials client = zm::testing::MakeLeaf(ca, {"spiffe://cluster.local/ns/shop/sa/client"});
    x->client_ctx = zm::tls::NewClientContext(client, zm::testing::Roots(ca), kTd, &error);
    if (!x->client_ctx) std::abort();
    return x;
  }();
  return *f;
}

// The pod behind 127.0.0.1:80.
struct Pod {
  int mode;  // flags & 3
  std::vector<int> conns;

  void Serve(int listener) {
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    for (int fd; (fd = accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;
         len = sizeof(peer)) {
      if (Get().netns && !CheckingObserver::AllowedSource(net::IpAddr::V4(peer.sin_addr.s_addr))) {
        std::fprintf(stderr, "the pod was reached from %s\n", net::SockAddr::FromSockaddrIn(peer).ToString().c_str());
        std::abort();
      }
      conns.push_back(fd);
    }
    char buf[16384];
    for (int& fd : conns) {
      if (fd < 0 || mode == 3) continue;
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        ssize_t w = send(fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
      }
      if ((n > 0 && mode == 1) || n == 0) {
        shutdown(fd, SHUT_WR);
      } else if (n > 0 && mode == 2) {
        proxy::ResetAndClose(fd);
        fd = -1;
      }
    }
  }
  ~Pod() {
    for (int fd : conns) {
      if (fd >= 0) close(fd);
    }
  }
};

// One turn of the event loop: the session's socket, every stream's upstream socket (with the readiness poll() sees),
// the pod, and the client reading (and dropping) what the server sent.
void Turn(FuzzServer* srv, SSL* client, Pod* pod) {
  if (!srv->closed()) srv->OnIo(EPOLLIN | EPOLLOUT);
  for (proxy::HboneStream* s : srv->streams()) {
    if (srv->closed() || s->fd < 0) continue;
    pollfd p{s->fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) continue;
    uint32_t ev = ((p.revents & POLLIN) ? EPOLLIN : 0) | ((p.revents & POLLOUT) ? EPOLLOUT : 0) |
                  ((p.revents & POLLRDHUP) ? EPOLLRDHUP : 0) | ((p.revents & POLLHUP) ? EPOLLHUP : 0) |
                  ((p.revents & POLLERR) ? EPOLLERR : 0);
    s->OnIo(ev);
  }
  pod->Serve(Get().listener);
  char buf[16384];
  while (SSL_read(client, buf, sizeof(buf)) > 0) {
  }
  ERR_clear_error();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& fx = Get();
  const uint8_t flags = data[0];
  fx.opts.hbone_trust_forwarded = !(flags & 16);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  auto ctx = std::make_unique<proxy::WorkerContext>(fx.opts, fx.stats, fx.snapshots, fx.certs);
  bssl::UniquePtr<SSL> server_ssl(SSL_new(fx.certs.Get(fx.server_id)->server_ctx.get()));
  net::SockAddr peer = net::SockAddr{Ip("127.0.1.1"), 40000}, local = net::SockAddr{Ip("127.0.0.1"), 15008};
  auto* srv = new FuzzServer(*ctx, fds[0], std::move(server_ssl), fx.server_id, peer, local);  // deletes itself

  bssl::UniquePtr<SSL> client(SSL_new(fx.client_ctx.get()));
  zm::tls::SetExpectedPeer(client.get(), fx.server_id);
  SSL_set_fd(client.get(), fds[1]);
  SSL_set_connect_state(client.get());
  Pod pod{flags & 3, {}};
  for (int i = 0; i < 20 && !(srv->ready() && SSL_is_init_finished(client.get())); i++) {
    SSL_do_handshake(client.get());
    Turn(srv, client.get(), &pod);
  }
  if (!srv->ready() || !SSL_is_init_finished(client.get())) {
    std::fprintf(stderr, "fuzz_hbone_http: the TLS handshake did not complete\n");
    std::abort();
  }

  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  out.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const size_t kPieces[] = {0, 9, 64, 512};
  const size_t piece = kPieces[(flags >> 2) & 3] ? kPieces[(flags >> 2) & 3] : out.size();
  for (size_t off = 0; off < out.size(); off += piece) {
    if (SSL_write(client.get(), out.data() + off, static_cast<int>(std::min(piece, out.size() - off))) <= 0) break;
    Turn(srv, client.get(), &pod);
    if ((flags & 64) && off < out.size() / 2 && off + piece >= out.size() / 2 && !srv->closed()) {
      static_cast<proxy::Closable*>(srv)->Drain();  // as the worker calls it
    }
  }
  for (int i = 0; i < 4; i++) Turn(srv, client.get(), &pod);
  if (flags & 32) {
    SSL_shutdown(client.get());
    for (int i = 0; i < 2; i++) Turn(srv, client.get(), &pod);
  }
  if (!srv->closed()) srv->ForceClose();
  ERR_clear_error();
  ctx->loop.RunGarbage();  // deletes the session and its streams
  if (!ctx->live.empty()) std::abort();
  client.reset();
  close(fds[1]);
  return 0;
}
