// A client connection to an HTTP/2 cleartext (h2c, prior knowledge) or gRPC Service port, handled per stream on the
// source node (issue 17's L7 path, no extra hop): every stream is routed on its own -- GRPCRoute rules (gRPC service
// and method, headers), then HTTPRoute rules -- to a backend by weight and an endpoint of it, so the calls of one
// long-lived gRPC connection are balanced across endpoints.
//
// Upstreams are HTTP/2 client sessions, one per endpoint, pooled per client connection and multiplexed (many streams
// on one). Each runs on a socketpair whose other end the worker hands to the L4 delivery (HBONE with the source
// workload's identity, same-node relay, or direct), as Http1Conn's do. Headers, DATA and trailers are relayed both
// ways; flow control is end to end: bytes received on one side are credited back (WINDOW_UPDATE) only once the other
// side's session took them, so at most a window per stream is buffered. RST_STREAM is passed on both ways; a stream
// that cannot be routed (or whose upstream fails before it answered) gets 503, or for gRPC UNAVAILABLE (14)
// trailers-only, on that stream alone.
//
// HTTPRoute retries (issue 17) as the HTTP/1.1 path does them, with retry_policy.h: a stream whose rule has a retry
// policy keeps its request (head as sent, DATA up to kMaxReplayBody; larger: not retried) until the response head
// comes. A try that answers one of the rule's codes, is reset or loses its upstream connection before its response
// head, or outlives timeouts.backendRequest, is submitted again after the jittered backoff on an upstream for another
// endpoint of the same backend (traffic::Reroute), within the worker's retry budget; nothing of a discarded try
// reaches the client. gRPC: a trailers-only response with grpc-status UNAVAILABLE (14) counts as 503 for the codes.
//
// HTTPRoute / GRPCRoute RequestMirror: a stream is sampled per mirror (percent) when it is routed; a sampled stream
// keeps its request in the same replay buffer (bound kMaxReplayBody; past it the copy is dropped and counted), and
// once the client ended the request a copy (":authority" with "-shadow", the same traceparent) goes to an endpoint
// of the mirror backend on its own upstream, fire-and-forget (H2Mirror).
//
// The same relay serves the destination proxy (StartDestination): the client side is the HBONE stream's socketpair
// end or the captured same-node / plaintext connection, the one upstream is the pod connection, streams map 1:1 and
// nothing is routed. Each stream is decided with the verified source identity (TrafficPermission http rules; denied:
// 403, gRPC PERMISSION_DENIED, on that stream alone), gets its SERVER span and is reported with reporter=destination.
// On a port Services declare both HTTP/1.1 and HTTP/2 (Params::http1_too) a connection without the preface goes to
// an InboundHttp with the bytes sniffed so far (destination_l7.h).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/proxy/h2_wire.h"
#include "agent/proxy/http1_codec.h"
#include "agent/proxy/inbound_http.h"
#include "agent/proxy/request_record.h"
#include "agent/proxy/retry_policy.h"
#include "agent/proxy/route_policy_gate.h"
#include "agent/proxy/worker_context.h"
#include "agent/traffic/router.h"

namespace zm::proxy {

class H2Conn : public Closable {
 public:
  // Opens a stream to route.addr (the worker's L4 delivery); returns our end of it, or -1 with *why.
  using UpstreamOpener = std::function<int(traffic::Route route, std::string* why)>;

  // Takes ownership of |client|; deletes itself when done. |service| and |port|: the VIP's Service and port.
  static void Start(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                    const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
                    std::string what);
  // The destination role. Takes |down| (the client side) and |up| (the pod; |up_connecting|: its connect is still in
  // progress); |p| as for InboundHttp. Bytes that do not open with the HTTP/2 preface go on as a byte relay, or with
  // p.enforce (the connection's AuthzDecision said per_request) close the connection: nothing unchecked reaches the
  // pod.
  static void StartDestination(WorkerContext& ctx, int down, int up, bool up_connecting, InboundHttp::Params p);
  void ForceClose() override;
  void Drain() override;  // GOAWAY: the streams open go on, no new ones; closes when they are done
  ~H2Conn() override;     // via EventLoop::DeleteLater only

 private:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  struct Upstream;
  struct Stream {
    int32_t id = 0;  // on the client session
    Upstream* up = nullptr;
    int32_t up_id = -1;
    bool grpc = false;  // content-type application/grpc*: errors are gRPC statuses
    // Request, as the client sent it.
    std::string method, scheme, authority, path;
    Headers headers, req_trailers;
    std::string to_up;  // request DATA not taken by the upstream session yet
    bool req_eof = false;
    bool up_deferred = false;
    // Response.
    int status = 0;
    Headers resp_headers, resp_trailers;
    std::string to_client;  // response DATA not taken by the client session yet
    bool resp_submitted = false;
    bool body_attached = false;  // the response's DATA provider (or its trailers) went to the client session
    bool resp_eof = false;
    bool client_deferred = false;
    bool up_closed = false;     // the upstream stream ended (or never opened)
    traffic::RequestLoad load;  // its hold on the endpoint until the upstream stream ends (in flight, latency)
    const std::vector<agent::HttpHeaderModifier>* response_mods = nullptr;
    RequestRecord rec;
    std::chrono::steady_clock::time_point start;
    std::string grpc_status;
    // A route's ServicePolicy (route_policy_gate.h) was applied; an injected delay holds the stream until its timer.
    bool policy_done = false;
    bool held = false;
    uint64_t hold_timer = 0;
    uint64_t timeout_timer = 0;  // the matched rule's timeouts.request (ArmTimeout)
    uint64_t try_timer = 0;      // timeouts.backendRequest of the try in flight
    uint32_t attempts = 0;       // tries submitted (the access log's attempts)
    // Retries (source role, a rule with a retry policy): the request as each try sends it, while it may be resent.
    const agent::HttpRouteRule* rule = nullptr;
    const agent::Service* backend = nullptr;  // the split's pick: a retry stays on it
    uint16_t backend_port = 0;
    std::vector<net::IpAddr> tried;
    HttpRequestHead sent;
    std::string replay;  // request DATA so far
    bool replayable = false;
    size_t credited = 0;         // bytes at the front of to_up already credited to the client (a retry's replay)
    bool retry_pending = false;  // backing off: request DATA is kept for the next try
    bool holds_budget = false;   // a slot of the worker's retry budget
    bool counted = false;        // in the retry budget's requests in flight
    uint64_t backoff_timer = 0;
    uint32_t mirror_mask = 0;  // rule->mirrors this stream was sampled for (bit i: mirrors[i]), until they are sent
  };
  struct Upstream : IoHandler {
    H2Conn* conn = nullptr;
    net::SockAddr key;
    H2Wire wire;
    bool goaway = false;      // takes no new streams
    bool connecting = false;  // the pod connection (destination role) is not established yet
    std::string failed;       // why it failed ("" while healthy); torn down in Settle
    void OnIo(uint32_t ev) override { conn->OnUpstream(this, ev); }
  };
  struct ClientEnd : IoHandler {
    H2Conn* conn = nullptr;
    void OnIo(uint32_t ev) override { conn->OnClient(ev); }
  };

  H2Conn(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap, const agent::Service* service,
         uint16_t port, const net::SockAddr& src, UpstreamOpener open, std::string what);
  H2Conn(WorkerContext& ctx, int down, int up, bool up_connecting, InboundHttp::Params p);
  bool CreateServer(std::string* why);
  Upstream* NewUpstream(int fd, const net::SockAddr& key,
                        std::string* why);  // an HTTP/2 client session on |fd| (owned)
  void OnClient(uint32_t ev);
  void OnUpstream(Upstream* u, uint32_t ev);
  // After any event: lets every session write, tears down failed upstreams, closes when nothing is left.
  void Settle();

  HttpRequestHead RequestHead(const Stream* s) const;  // as the HTTP/1.1 path sees it (":authority" is "host")
  void RouteStream(Stream* s);
  // Destination role: decides |s| (policy, span) and sends it to the pod.
  void AdmitStream(Stream* s);
  void Deny(Stream* s, const AuthzDecision& d);
  // Destination role, before the session sees a byte: true once the HTTP/2 preface came (and was fed to the session);
  // false when more bytes are needed or the connection was handed on or closed.
  bool Sniff();
  void FallBackToRelay();  // not HTTP/2: the pod gets the sniffed bytes, then a byte relay
  void HandToHttp1();      // not HTTP/2 on a port that is HTTP/1.1 too: an InboundHttp takes it, sniffed bytes first
  void HandOff(int* down, int* up);  // gives both descriptors up to another handler; this object is deleted
  Upstream* UpstreamFor(traffic::Route route, std::string* why);
  bool SubmitUpstream(Stream* s, Upstream* u, const HttpRequestHead& head, std::string* why);
  void SubmitResponse(Stream* s, bool end_stream);
  // Ends |s| toward the client: an error response when none went out yet, else RST_STREAM (|code|).
  void FailStream(Stream* s, int http_status, const std::string& why, uint32_t code);
  void DetachUpstream(Stream* s, bool cancel);  // the upstream stream is no longer this stream's
  // A route's ServicePolicy: answers |s| itself (429 / abort; gRPC: trailers-only status), or routes it after |delay|.
  void ReplyLocally(Stream* s, const LocalReply& reply);
  void HoldStream(Stream* s, std::chrono::milliseconds delay, const std::string& policy);
  // HTTPRoute timeouts.request (the whole stream, retries included; backendRequest is per try, StartTry): when the
  // upstream has not ended its response in time, 504 (gRPC: DEADLINE_EXCEEDED) if none of it went out yet, else
  // RST_STREAM.
  void ArmTimeout(Stream* s, const agent::HttpRouteRule& rule);
  void OnStreamTimeout(int32_t id, std::chrono::milliseconds after, bool per_try);
  // Retries: submits a try of |s| on |u| (counts it, arms its backendRequest timer); false when it failed the stream.
  bool StartTry(Stream* s, Upstream* u, net::IpAddr ip, const HttpRequestHead& head);
  bool CanRetry(Stream* s, TryOutcome outcome, int status);
  void RetryStream(Stream* s, const std::string& why);  // drops the try in flight, backs off, then RetryNow
  void RetryNow(Stream* s);
  void KeepForReplay(Stream* s, const char* data, size_t len);
  void DropReplay(Stream* s);
  // RequestMirror: once the client ended |s|'s request, a copy to each mirror it was sampled for (H2Mirror).
  void MirrorIfEnded(Stream* s);
  void EndStream(Stream* s);  // its timers and its hold on the retry budget
  void DropUpstream(Upstream* u);
  void Resume(Stream* s);  // new bytes or an end for a deferred data provider
  void Report(Stream* s, const std::string& error);
  void Finish(bool reset);

  // Client session callbacks (server role).
  static int OnClientBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnClientHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                            const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int OnClientFrame(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnClientData(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len, void* user);
  static int OnClientStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* user);
  static ssize_t ReadResponseBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                                  nghttp2_data_source*, void* user);
  // Upstream session callbacks (client role); |user| is the Upstream.
  static int OnUpstreamHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                              const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int OnUpstreamFrame(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnUpstreamData(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len, void* user);
  static int OnUpstreamStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* user);
  static ssize_t ReadRequestBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                                 nghttp2_data_source*, void* user);

  WorkerContext& ctx_;
  ClientEnd client_end_;
  H2Wire client_;
  std::shared_ptr<const agent::MeshSnapshot> snap_;
  const agent::Service* service_;
  uint16_t port_;
  UpstreamOpener open_;
  std::string what_;
  net::SockAddr src_{};
  Peer src_peer_;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;  // by client stream id
  std::vector<std::unique_ptr<Upstream>> upstreams_;
  std::map<net::SockAddr, Upstream*> pool_;  // the upstream new streams to an endpoint (ip:port) go on
  bool in_settle_ = false;
  bool done_ = false;
  // Destination role (dest_ set).
  std::unique_ptr<InboundHttp::Params> dest_;
  Upstream* pod_ = nullptr;  // the one upstream; nullptr once it failed
  bool sniffing_ = false;    // the HTTP/2 preface has not been seen yet
  bool fall_back_ = false;   // not HTTP/2: hand on to the byte relay once the pod connection is up
  std::string sniffed_;
  ConnTracker track_;
  Peer dst_peer_;
  std::string destination_service_;
};

}  // namespace zm::proxy
