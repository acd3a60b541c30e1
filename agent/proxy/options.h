// NodeProxy configuration, the authorization hook and the stats counters.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/proxy/conn_observer.h"
#include "agent/proxy/socket_util.h"
#include "agent/state/mesh_snapshot.h"
#include "common/net/ip_addr.h"
#include "common/tls/spiffe.h"

namespace zm::proxy {

// One HTTP request at the destination (TrafficPermission http rules): views into the parsed head.
struct HttpRequestAttrs {
  std::string_view method;
  std::string_view path;  // normalized (NormalizePolicyPath), without the query
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  // names lower case
};

struct AuthzRequest {
  const tls::SpiffeId* source = nullptr;  // verified client identity (nullptr: plaintext, no identity)
  net::IpAddr source_ip;
  const agent::Workload* destination = nullptr;
  uint16_t port = 0;
  const HttpRequestAttrs* http = nullptr;  // set: decide this request; nullptr: decide the connection
};

struct AuthzDecision {
  bool allow = true;
  std::string reason;
  std::string policy = {};  // name of the deciding policy (metrics label, access log); optional
  // A connection decision (AuthzRequest::http unset) that HTTP rules refine: the connection may proceed, but each of
  // its requests must be decided again with its attributes (the destination proxy parses them).
  bool per_request = false;
};

// Called on worker threads for every new connection (and, when a decision says per_request, for every request of
// it); must be thread-safe and quick.
using Authorizer = std::function<AuthzDecision(const AuthzRequest&)>;

// Counters only (relaxed atomics); metrics exporters read them.
struct ProxyStats {
  std::atomic<uint64_t> outbound_accepted{0};
  std::atomic<uint64_t> hbone_accepted{0};  // TLS connections on the HBONE listener
  std::atomic<uint64_t> plaintext_accepted{0};
  std::atomic<uint64_t> hbone_sessions_opened{0};   // outgoing pooled TLS connections
  std::atomic<uint64_t> hbone_streams_opened{0};    // CONNECT streams sent
  std::atomic<uint64_t> hbone_streams_accepted{0};  // CONNECT streams answered 200
  std::atomic<uint64_t> hbone_streams_queued{0};    // outbound streams that waited: their pool was at its limits
  std::atomic<uint64_t> passthrough{0};
  std::atomic<uint64_t> same_node{0};
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> bytes_out{0};  // client -> server direction
  std::atomic<uint64_t> bytes_in{0};   // server -> client direction
  std::atomic<uint64_t> denials{0};
  std::atomic<uint64_t> tls_failures{0};
  std::atomic<uint64_t> upstream_failures{0};
  std::atomic<uint64_t> hbone_redials{0};  // HBONE connects retried on a fresh socket (peer agent restarting)
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> held_unknown_source{0};
  std::atomic<uint64_t> held_refused{0};  // refused instead of held: the worker held max_held_connections already
  // Inbound HBONE bounds (ProxyOptions::handshake_timeout, header_timeout, max_connections_per_peer).
  std::atomic<uint64_t> hbone_handshake_timeouts{0};
  std::atomic<uint64_t> hbone_header_timeouts{0};
  std::atomic<uint64_t> hbone_peer_limit_refused{0};
  std::atomic<uint64_t> resets{0};
  std::atomic<uint64_t> service_connections{0};  // connections to a Service VIP routed to an endpoint
  std::atomic<uint64_t> service_no_endpoint{0};  // refused: the Service has no (usable) endpoint or port
  std::atomic<uint64_t> circuit_breaker_rejections{0};
  std::atomic<uint64_t> connect_retries{0};       // connects retried on another endpoint
  std::atomic<uint64_t> ratelimit_rejections{0};  // new connections refused by a destination rate limit
  // HTTP (L7) resilience, source side (the retries themselves: zeromesh_request_retries_total, per route): retries
  // refused by the retry budget, requests answered 504 by a route timeout, RequestMirror copies sent and dropped.
  std::atomic<uint64_t> http_retry_budget_exhausted{0};
  std::atomic<uint64_t> http_timeouts{0};
  std::atomic<uint64_t> http_mirrored{0};
  std::atomic<uint64_t> http_mirror_dropped{0};
  // HTTP/1.1 upstream streams: opened (a new tunnel stream to an endpoint), and taken from the worker's idle pool for
  // a client connection other than the one that opened them (UpstreamPool).
  std::atomic<uint64_t> http_upstream_opened{0};
  std::atomic<uint64_t> http_upstream_reused{0};
  // Connections to a pod's HTTP/1.1 port that did not speak HTTP/1.1 (or whose pod spoke first): relayed as bytes.
  std::atomic<uint64_t> destination_protocol_fallbacks{0};

  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

// Maps an accepted socket to its original destination. Production: getsockname() (tc + bpf_sk_assign keep the
// original 4-tuple). Loopback tests substitute a mapping that plays the part of the BPF redirect.
using OriginalDst = std::function<bool(int fd, net::SockAddr* dst)>;

struct ProxyOptions {
  int workers = 0;  // 0: one per core
  net::IpAddr listen_addr = net::IpAddr::V4(htonl(INADDR_ANY));
  // The IPv6 listeners' address (IPV6_V6ONLY, same ports, same options); unset: IPv4 only. On a node without IPv6
  // (disable_ipv6, or no IPv6 in the kernel) they are left out, logged once.
  net::IpAddr listen_addr6 = net::IpAddr::V6(in6addr_any);
  // Where "IPv6 is disabled" is read ("1": no IPv6 listeners); tests point it at a file of their own.
  std::string ipv6_disabled_sysctl = "/proc/sys/net/ipv6/conf/all/disable_ipv6";
  uint16_t outbound_port = 15001;  // 0: ephemeral (tests)
  uint16_t hbone_port = 15008;
  uint16_t plaintext_port = 15006;
  uint16_t hbone_dial_port = 15008;  // port dialed on destination pods
  bool transparent_listeners = true;
  SourceBind source_bind = SourceBind::kTransparent;

  std::chrono::milliseconds connect_timeout{5000};
  // Called with a connected socket whose peer is a local pod, on a connection the proxy reads and writes itself
  // (never splice): the agent puts it in the sockmap (agent/bpf/sockmap.h). Empty: off.
  std::function<void(int fd)> accelerate;
  // SO_MARK of every socket the proxy opens or accepts (0: none). The agent sets ZM_MARK_PROXY: the node's conntrack
  // then skips the proxy's packets, which otherwise clash with entries left by the pods' direct (pre-mesh) flows.
  uint32_t socket_mark = 0;
  std::chrono::milliseconds unknown_source_hold{5000};
  // Connections held per worker (unknown source, destination or certificate not ready; see Worker::Hold); beyond it
  // a connection that would be held is refused (RST). 0: no limit.
  size_t max_held_connections = 4096;
  // Inbound HBONE (a hostile or broken peer must not pin descriptors): a connection must complete its TLS handshake
  // within handshake_timeout and then send its first CONNECT within header_timeout, else it is closed. At most
  // max_connections_per_peer HBONE connections per TCP source address (all workers together; the identity is not
  // known before TLS); beyond it a new one is refused (RST). 0: no limit. Outbound handshakes use connect_timeout.
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds header_timeout{10000};
  uint32_t max_connections_per_peer = 512;
  std::chrono::milliseconds ping_interval{10000};
  std::chrono::milliseconds idle_timeout{300000};
  uint32_t max_streams_per_connection = 100;  // HBONE, both roles (ztunnel's default)
  uint32_t max_connections_per_pool = 16;     // outbound HBONE, per worker and pool key; 0: no limit
  // Outbound HBONE connections leave from the source pod's address (bound with |source_bind|), so the destination
  // sees the pod as ztunnel does; pools are then per source address too. false: the node's address.
  bool hbone_bind_source = true;
  // Inbound HBONE: take the source from `forwarded: for=` (checked against the client identity). false: only the
  // connection's source address counts, as ztunnel does.
  bool hbone_trust_forwarded = true;
  uint32_t stream_window = 4 << 20;
  uint32_t connection_window = 16 << 20;
  uint32_t max_frame_size = 1 << 20;
  size_t stream_read_buffer = 256 * 1024;  // tcp -> h2 per stream, beyond this reading stops
  size_t pipe_size = 256 * 1024;           // splice pipes of plain relays
  // Spans per HTTP/1.1 request (an OTLP exporter is configured): the source proxy makes a CLIENT span and the
  // destination proxy a SERVER span of every request, sampled at the snapshot's ratio (docs/design.md "Tracing"); the
  // destination then parses every HTTP/1.1 connection, not only those with per-request policy.
  bool tracing = false;

  Authorizer authorize;                    // empty: allow all (until the controller's policy lands)
  OriginalDst original_dst;                // empty: getsockname()
  std::shared_ptr<ConnObserver> observer;  // empty: no per-connection telemetry
};

}  // namespace zm::proxy
