// A client connection to an HTTP/1.1 Service port, handled per request on the source node (issue 17's L7 path, no
// extra hop): each request is parsed (llhttp), matched against the HTTPRoutes of the Service, sent to a backend by
// weight and an endpoint of it, and its response is framed and relayed back; keep-alive continues. An Upgrade or
// CONNECT request pins the connection to its upstream, which then passes bytes both ways.
//
// Upstreams are pooled per client connection (one per endpoint, reused by later requests of this connection) and,
// once it ends, those that ended their exchanges cleanly go to the worker's UpstreamPool, where the next client
// connection of the same source workload to the same endpoint takes them. Each is a socketpair whose other end the
// worker hands to the same delivery the L4 path uses (HBONE with the source workload's identity, same-node relay, or
// direct), so identity, policy and the tunnel are exactly the L4 path's. One request is in flight at a time
// (pipelined requests wait their turn).
//
// Resilience per HTTPRoute rule, only when the matched rule asks for it (otherwise nothing is kept or timed):
//  - retry: a try that answers one of the rule's codes, fails to connect, or is reset before any byte of its response
//    reached the client is tried again (up to retry.attempts more times, jittered exponential backoff, another
//    endpoint of the same backend when there is one, within the worker's retry budget). The request (head as sent
//    plus body up to kMaxReplayBody) is kept for the replay; a discarded response is read to its end when it is
//    already in, else its upstream is closed, so none of it reaches the next exchange.
//  - timeouts.request (the whole request, retries included) and timeouts.backendRequest (each try; a retryable
//    failure): 504 when nothing of the response went out yet, else a reset.
//  - RequestMirror: each mirror samples its percent% when the request is routed; a sampled request is kept (body up to
//    the bound) and copied (head with "-shadow" Host) to an endpoint of the mirror backend once it is complete;
//    fire-and-forget (HttpMirror). A request no mirror sampled keeps nothing.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/proxy/http1_codec.h"
#include "agent/proxy/request_record.h"
#include "agent/proxy/retry_policy.h"
#include "agent/proxy/route_policy_gate.h"
#include "agent/proxy/upstream_pool.h"
#include "agent/proxy/worker_context.h"
#include "agent/traffic/router.h"

namespace zm::proxy {

class Http1Conn : public Closable {
 public:
  // Opens a stream to route.addr (the worker's L4 delivery); returns our end of it, or -1 with *why.
  using UpstreamOpener = std::function<int(traffic::Route route, std::string* why)>;

  // Takes ownership of |client|; deletes itself when done. |service| and |port|: the VIP's Service and port.
  // |src|: the client's address (the request metrics' source workload).
  static void Start(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
                    const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
                    std::string what);
  void ForceClose() override;
  void Drain() override;
  ~Http1Conn() override;  // via EventLoop::DeleteLater only

 private:
  struct Upstream : IoHandler {
    Http1Conn* conn = nullptr;
    int fd = -1;
    net::SockAddr key;
    net::IpAddr ip;   // the endpoint's (a retry prefers another)
    std::string out;  // bytes not yet written to fd
    // Its Service's ServicePolicy idleTimeout, for the worker's pool.
    std::chrono::milliseconds idle_timeout{0};
    void OnIo(uint32_t ev) override { conn->OnUpstream(this, ev); }
  };
  struct ClientEnd : IoHandler {
    Http1Conn* conn = nullptr;
    void OnIo(uint32_t ev) override { conn->OnClient(ev); }
  };

  Http1Conn(WorkerContext& ctx, int client, std::shared_ptr<const agent::MeshSnapshot> snap,
            const agent::Service* service, uint16_t port, const net::SockAddr& src, UpstreamOpener open,
            std::string what);
  void OnClient(uint32_t ev);
  void OnUpstream(Upstream* u, uint32_t ev);
  void ReadClient();
  void Process();       // parses buffered request bytes as far as the in-flight exchange allows
  bool StartRequest();  // routes the parsed head and queues it upstream; false when the connection was failed
  void OnResponseBytes(Upstream* u, const char* data, size_t len);
  void ResponseDone(Upstream* u);
  void UpstreamClosed(Upstream* u);
  Upstream* UpstreamFor(traffic::Route route, std::string* why);  // pooled, else newly opened
  bool Alive(const net::SockAddr& key, const Upstream* u) const;  // |u| was not dropped (nor the connection)
  UpstreamKey PoolKey(
      const net::SockAddr& endpoint);  // the worker pool's key of an upstream of this client to |endpoint|
  void DropUpstream(Upstream* u);
  void FlushClient();
  void FlushUpstream(Upstream* u);
  // Answers |status| (when nothing of a response went out yet) and closes after it; otherwise resets the client.
  // |body|: the error body, default |reason|.
  void FailRequest(int status, const char* reason, const std::string& why, const char* body = nullptr);
  // HTTPRoute retries, timeouts and mirrors (see the top of this file).
  void StartTry(Upstream* u, const std::string& head);  // head (and the kept body, on a retry) queued to |u|
  bool CanRetry(TryOutcome outcome, int status);        // takes a retry budget slot when it says yes
  void RetryAfter(Upstream* u, bool keep_upstream, const std::string& why);  // the try failed: back off, then again
  void StartRetry();
  void KeepForReplay(std::string_view wire);  // request body bytes as they went upstream
  void OnRequestTimeout();
  void OnTryTimeout();
  void TimeoutReply(const std::string& why);  // 504 (keep-alive when the request was read whole), else a reset
  void SendMirrors();                         // the request is complete: a copy to each mirror in mirror_mask_
  void EndResilience();                       // the request ended: timers, budget slot, kept bytes
  // A route's ServicePolicy (route_policy_gate.h): |reply| answers the request in flight without an upstream;
  // false when the connection closes after it. EndFaultDelay: an injected delay ended, the held request goes out.
  bool LocalReplyNow(const LocalReply& reply);
  void EndFaultDelay();
  void CloseWhenFlushed();
  void Finish(bool reset);
  // Golden request telemetry (ConnObserver::OnRequest): a record opens when a request head arrives and is reported
  // once, when its response ended or the request failed.
  void OpenRequestRecord();
  void ReportRequest(int status, std::string error);

  WorkerContext& ctx_;
  int client_ = -1;
  ClientEnd client_end_;
  std::shared_ptr<const agent::MeshSnapshot> snap_;
  const agent::Service* service_;
  uint16_t port_;
  UpstreamOpener open_;
  std::string what_;

  std::string in_;   // client bytes not parsed yet
  std::string out_;  // bytes for the client not written yet
  Http1RequestParser parser_;
  Http1ResponseFramer framer_;
  std::map<net::SockAddr, std::unique_ptr<Upstream>> upstreams_;  // by endpoint ip:port
  Upstream* current_ = nullptr;                                   // the upstream of the in-flight request
  traffic::RequestLoad load_;  // the try in flight's hold on its endpoint (requests in flight, latency to its head)
  // The matched rule's ResponseHeaderModifiers (they point into snap_), nullptr when none: heads are rewritten.
  const std::vector<agent::HttpHeaderModifier>* response_mods_ = nullptr;
  bool chunked_ = false;      // the in-flight request's body is re-chunked upstream
  bool request_done_ = true;  // no request body still to come
  bool awaiting_response_ = false;
  bool response_started_ = false;  // bytes of the in-flight response went to the client
  bool keep_alive_ = true;         // the client's last request allows another
  bool tunnel_ = false;            // Upgrade / CONNECT: bytes pass through to current_
  bool client_eof_ = false;
  bool client_readable_ = false;
  bool client_writable_ = false;
  bool close_when_flushed_ = false;
  bool draining_ = false;
  bool answered_locally_ = false;  // a route policy answered the request in flight: the rest of its body is dropped
  bool done_ = false;

  net::SockAddr src_{};
  Peer src_peer_;            // made on the first request
  std::string pool_source_;  // the source's principal and address (UpstreamKey::source), made on first use
  RequestRecord req_;
  bool req_open_ = false;
  std::chrono::steady_clock::time_point req_start_{};
  uint64_t request_bytes_ = 0;  // client bytes the parser consumed for the request in flight

  // Resilience state of the request in flight (idle unless its rule has a retry, a timeout or a mirror).
  const agent::HttpRouteRule* rule_ = nullptr;  // the matched rule (points into snap_)
  const agent::Service* backend_ = nullptr;     // the backend the first try went to: retries keep it
  uint16_t backend_port_ = 0;
  std::vector<net::IpAddr> tried_;  // endpoints tried for this request
  std::string replay_head_;         // the head as sent upstream (filters applied), kept for retries and mirrors
  std::string replay_body_;         // the body as sent upstream (re-chunked when chunked_), up to kMaxReplayBody
  uint32_t attempts_ = 0;           // tries started for the request in flight
  uint64_t request_timer_ = 0, try_timer_ = 0, backoff_timer_ = 0;
  uint64_t hold_timer_ = 0;     // an injected delay: the request's bytes wait for it before going upstream
  bool head_request_ = false;   // HEAD or CONNECT: no response body
  bool capture_heads_ = false;  // the framer stops after each response head (header modifiers or retries)
  bool buffering_ = false;      // the request is kept (its rule retries, or a mirror sampled it)
  bool replayable_ = false;     // what is kept is the whole request so far (not over kMaxReplayBody)
  bool retry_pending_ = false;  // backing off between two tries: no upstream, the client's bytes wait in in_
  bool holds_budget_ = false;   // this request holds a slot of the worker's retry budget
  bool in_request_ = false;     // counted among the worker's requests in flight (the budget's base)
  uint32_t mirror_mask_ = 0;    // rule_->mirrors sampled for this request (bit i: mirrors[i]), sent once it is complete
};

}  // namespace zm::proxy
