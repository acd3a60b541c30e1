// The destination side of a connection to a pod's HTTP/1.1 Service port, or of one whose TrafficPermissions have http
// rules (AuthzDecision::per_request, Params::enforce): every request is parsed (llhttp, Http1RequestParser), reported
// to the ConnObserver with reporter=destination (golden metrics, access log, SERVER span) and, with enforce, decided
// with the verified source identity and its method, normalized path and headers, then either forwarded to the local
// pod or answered 403 Forbidden with the reason (body) and the deciding policy (x-zeromesh-denied), keep-alive
// preserved either way. An Upgrade or CONNECT request is decided on its head; once allowed the connection becomes a
// byte stream both ways.
//
// Protocol sniffing: without enforce, a connection whose first bytes are not an HTTP/1.1 request head (the parser
// fails, or the client ends, before the first head is complete) or whose pod speaks first becomes that byte stream
// at once, carrying every byte read so far in order (counted in destination_protocol_fallbacks). With enforce it stays
// fail-closed: 400 and close, so bytes that are not HTTP never bypass a per-request decision. Once a request head was
// read the connection is HTTP for good (garbage later is a 400). No timer: an idle client may wait as long as it likes.
//
// Other ports keep their byte relay (SpliceRelay, HboneStream; DestinationL7For). |down| is the client side (a
// socketpair end the HBONE stream relays into, or the captured same-node / plaintext connection), |up| the pod. One
// exchange at a time (a pipelined request waits for the previous response; a client that half-closes after its
// requests still gets every response). The byte stream keeps TCP's semantics as SpliceRelay does: each direction's FIN
// is passed on once the bytes before it are written (half-close both ways), and a reset or error on either side
// resets both (except a pod's reset over HBONE: the socketpair carries no RST, the client sees a clean end).
#pragma once

#include <memory>
#include <string>

#include "agent/proxy/http1_codec.h"
#include "agent/proxy/request_record.h"
#include "agent/proxy/route_policy_gate.h"
#include "agent/proxy/worker_context.h"

namespace zm::proxy {

class InboundHttp : public Closable {
 public:
  struct Params {
    std::shared_ptr<const agent::MeshSnapshot> snap;
    const agent::Workload* destination = nullptr;  // the local pod (in snap)
    bool has_source_id = false;                    // false: a plaintext client (PERMISSIVE), judged by address
    tls::SpiffeId source_id;
    net::SockAddr src{};  // the client (policy source, metrics)
    net::SockAddr dst{};  // the pod's address and port
    std::string what;     // for logs
    // The connection's AuthzDecision said per_request: every request is decided, and bytes that are not HTTP/1.1 are
    // refused (no fallback to a byte stream).
    bool enforce = false;
    // Set when this object owns the connection's telemetry (same-node, plaintext); empty flow: the caller tracks it
    // (the HBONE stream does).
    ConnRecord conn;
    // H2Conn's destination role on a port Services declare both HTTP/1.1 and HTTP/2 (DestinationL7::kHttp1OrHttp2):
    // a connection without the HTTP/2 preface goes to an InboundHttp, not to the byte relay.
    bool http1_too = false;
    // Client bytes already read from |down| (by H2Conn's sniffing): parsed first, as if read here.
    std::string preread;
  };

  // Takes both descriptors; |up_connecting|: the connect to the pod is still in progress. Deletes itself when done.
  static void Start(WorkerContext& ctx, int down, int up, bool up_connecting, Params p);
  void ForceClose() override;
  void Drain() override;
  ~InboundHttp() override;  // via EventLoop::DeleteLater only

 private:
  struct End : IoHandler {
    InboundHttp* conn = nullptr;
    bool up = false;
    void OnIo(uint32_t ev) override { up ? conn->OnUp(ev) : conn->OnDown(ev); }
  };

  InboundHttp(WorkerContext& ctx, int down, int up, bool up_connecting, Params p);
  void OnDown(uint32_t ev);
  void OnUp(uint32_t ev);
  void ReadDown();
  void ReadUp();
  void Process();
  bool StartRequest();  // decides the parsed head; false when the connection was failed
  void Deny(const AuthzDecision& d);
  void RateLimited(const LocalReply& reply);  // the Service's request rate limit refused it: 429, keep-alive kept
  void Refuse(int status);                    // the request is answered here: its body is read and dropped
  void RequestEnded();                        // the request's last byte was parsed
  void OnResponseBytes(const char* data, size_t len);
  void ResponseDone();
  void UpClosed();
  void FlushDown();
  void FlushUp();
  void Fail(int status, const char* reason, const std::string& why);
  // Sniffing found no HTTP/1.1: a byte stream both ways from here on. |count|: a protocol fallback for the metric (not
  // a client that ended without a byte).
  void FallBack(const char* why, bool count = true);
  void PassFins();  // byte stream: forwards each direction's FIN once its bytes are written; ends when both have
  void CloseWhenFlushed();
  void Finish(bool reset);
  void OpenRecord();
  void Report(int status, std::string error, std::string policy = {});

  WorkerContext& ctx_;
  Params p_;
  int down_ = -1;
  int up_ = -1;
  End down_end_, up_end_;
  ConnTracker track_;
  std::string destination_service_;  // the Service this pod port serves over HTTP ("" if none)

  std::string in_;       // client bytes not parsed yet
  std::string out_;      // bytes for the client not written yet
  std::string up_out_;   // bytes for the pod not written yet
  std::string sniffed_;  // every client byte read while sniffing_ (none has gone to the pod yet)
  Http1RequestParser parser_;
  Http1ResponseFramer framer_;
  bool up_connecting_ = false;
  bool up_writable_ = false;
  bool down_readable_ = false;
  bool down_writable_ = false;
  bool chunked_ = false;      // the allowed request's body is re-chunked to the pod
  bool denied_ = false;       // the request in progress was refused: its body is read and dropped
  int refused_status_ = 0;    // and answered this status (403 denied, 429 rate limited)
  bool request_done_ = true;  // no request body still to come
  bool awaiting_response_ = false;
  bool response_started_ = false;
  bool keep_alive_ = true;
  bool tunnel_ = false;
  bool sniffing_ = false;   // no request head yet and no enforce: the connection may still fall back to a byte stream
  bool down_eof_ = false;   // FIN read from the client
  bool up_eof_ = false;     // FIN read from the pod
  bool up_shut_ = false;    // byte stream: the client's FIN passed on to the pod
  bool down_shut_ = false;  // byte stream: the pod's FIN passed on to the client
  bool close_when_flushed_ = false;
  bool draining_ = false;
  bool done_ = false;

  Peer src_peer_, dst_peer_;
  RequestRecord req_;
  bool req_open_ = false;
  std::chrono::steady_clock::time_point req_start_{};
  uint64_t request_bytes_ = 0;
};

}  // namespace zm::proxy
