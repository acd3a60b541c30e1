// An HBONE connection: TLS (BoringSSL, non-blocking on the socket) carrying an nghttp2 session whose CONNECT streams
// are each paired with a plain TCP socket. Shared by the client (outbound pool) and server (15008) roles.
//
// Flow control: automatic WINDOW_UPDATE is off; bytes received on a stream are credited back to the peer only after
// they were written to that stream's TCP socket, so a slow receiver throttles its sender without stalling the other
// streams. The TCP->h2 direction stops reading when the stream's queue is full and nghttp2 defers the data provider.
#pragma once

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <string>
#include <unordered_set>
#include <vector>

#include "agent/proxy/conn_observer.h"
#include "agent/proxy/destination_l7.h"
#include "agent/proxy/service_conn.h"
#include "agent/proxy/socket_util.h"
#include "agent/proxy/worker_context.h"

namespace zm::proxy {

class HboneSession;

class HboneStream : public IoHandler {
 public:
  HboneStream(HboneSession* s, EventLoop* l, BlockPool* pool) : session(s), loop(l), to_h2(pool), to_tcp(pool) {}
  ~HboneStream() override;
  void OnIo(uint32_t ev) override;
  void OnReady() override;

  HboneSession* session;
  EventLoop* loop;
  int32_t id = -1;
  int fd = -1;
  bool registered = false;
  bool connecting = false;   // server: upstream connect in progress
  bool established = false;  // relaying (client: got 200; server: connected and answered 200)
  bool tcp_readable = false;
  bool tcp_writable = false;
  bool tcp_hup = false;    // epoll reported a FIN or error: read until EOF, a short read is no sign of a drained socket
  bool tcp_bulk = false;   // the last read filled its buffer: the next one reads into several blocks at once
  bool tcp_eof = false;    // FIN read from TCP (END_STREAM follows)
  bool tcp_shut = false;   // FIN written to TCP
  bool tcp_error = false;  // TCP failed: reset it and cancel the h2 stream
  bool h2_eof = false;     // END_STREAM received
  bool h2_closed = false;  // nghttp2 closed the stream
  uint32_t h2_error = 0;
  bool deferred = false;  // data provider returned NGHTTP2_ERR_DEFERRED
  bool touched = false;   // queued for Settle()
  bool ready_pending = false;
  bool credited_all = false;  // after close: connection credit given back in full
  ByteQueue to_h2;
  ByteQueue to_tcp;
  size_t unconsumed = 0;  // written to TCP, not yet credited
  uint64_t timer = 0;
  int status = 0;          // client: the CONNECT's response status (the request's headers: HboneSession::request_)
  net::SockAddr client{};  // client side: the downstream peer (source pod)
  net::SockAddr target{};  // the original destination
  ConnTracker track;       // telemetry of the proxied connection (opened once relaying was decided)
  ServiceConn svc;         // client side, Service connections: lease and retry (service_conn.h)
  bool active = false;     // bytes moved since the last idle check (client side, with svc.idle_timeout)
  // Server: TrafficPermission http rules decide each request; the per-request handler between the stream and the pod.
  bool per_request = false;
  DestinationL7 l7 = DestinationL7::kNone;
  int quiet_checks = 0;
};

class HboneSession : public IoHandler, public Closable {
 public:
  enum class State { kConnecting, kHandshaking, kReady, kClosed };

  HboneSession(WorkerContext& ctx, int fd, bssl::UniquePtr<SSL> ssl, bool client, std::string peer);
  ~HboneSession() override;

  void OnIo(uint32_t ev) override;
  void OnReady() override { Drive(); }
  void ForceClose() override { Close("proxy stopping"); }

  void Close(const std::string& why);
  bool closed() const { return state_ == State::kClosed; }

  // Client role: how to dial the peer again. Until the connect/handshake deadline, a connect that is refused, or not
  // answered within a second, is retried on a fresh socket. While the destination's agent restarts its SYNs are
  // dropped, and the kernel's own retransmissions (after 1, 3, 7 s) would overshoot the deadline or come late.
  struct Dial {
    net::SockAddr addr{};
    net::IpAddr source_ip;
    SourceBind bind = SourceBind::kNone;
  };
  void EnableRedial(const Dial& d);
  size_t stream_count() const { return streams_.size(); }

  // Stream-side entry points (from HboneStream handlers).
  void OnStreamIo(HboneStream* s);
  void ReadTcp(HboneStream* s);
  void WriteTcp(HboneStream* s);
  void Touch(HboneStream* s);

 protected:
  // Role hooks.
  virtual void OnEstablished() = 0;  // TLS verified, nghttp2 session created
  virtual void OnSessionClosed(bool /*was_established*/) {}
  virtual int OnBeginHeaders(int32_t /*stream_id*/) { return 0; }
  virtual void OnRequestOrResponse(HboneStream* s) = 0;  // all headers of a HEADERS frame received
  virtual void OnUpstreamConnect(HboneStream* /*s*/, int /*err*/) {}
  virtual void OnStreamDone(HboneStream* /*s*/) {}
  virtual void StopNewStreams() {}  // idle GOAWAY sent or GOAWAY received

  bool CreateH2(std::string* error);
  void Drive();
  void Flush();
  void SettleAll();
  void Settle(HboneStream* s);
  void DestroyStream(HboneStream* s, bool reset_tcp);
  HboneStream* NewStream();
  void AddStreamFd(HboneStream* s, int fd);
  void ArmIdle();
  // A client stream that failed before it was established and may retry: gives the untouched downstream fd to
  // s->svc.retry (posted) and detaches it from the stream. False when it cannot.
  bool HandBack(HboneStream* s);
  static nghttp2_data_provider DataProvider(HboneStream* s);

  WorkerContext& ctx_;
  int fd_;
  bssl::UniquePtr<SSL> ssl_;
  bool client_;
  std::string peer_;  // for logs
  State state_;
  nghttp2_session* h2_ = nullptr;
  ByteQueue out_;
  bool readable_ = false;
  bool writable_ = false;
  bool hup_ = false;         // epoll reported a FIN or error: read until EOF (see ReadTls)
  bool read_ahead_ = false;  // the TLS reads go through tls_socket_bio.h
  bool in_drive_ = false;
  size_t conn_credit_ = 0;
  std::unordered_set<HboneStream*> streams_;
  std::vector<HboneStream*> touched_;
  // DATA payloads received for streams whose pod socket can take them, in arrival order; they point into the
  // worker's scratch buffer and are sent (SendGathered) before it is read into again.
  struct Chunk {
    HboneStream* s;
    const uint8_t* data;
    size_t len;
  };
  std::vector<Chunk> gathered_;
  uint64_t handshake_timer_ = 0;
  uint64_t header_timer_ = 0;  // server: from the handshake until the first complete request
  uint64_t idle_timer_ = 0;
  uint64_t ping_timer_ = 0;
  uint64_t attempt_timer_ = 0;   // client, while connecting: the next redial
  bool redial_ = false;          // EnableRedial() was called
  bool redial_pending_ = false;  // the last connect failed; a fresh one is due (attempt_timer_)
  Dial dial_;
  EventLoop::Clock::time_point last_read_;
  // Server: the headers of the request being received. HTTP/2 sends a header block's frames back to back, so one per
  // session is enough: OnRequestOrResponse reads it as the block ends, and a stream keeps none of it (160 bytes less).
  struct Request {
    std::string method, authority, forwarded;
    std::string traceparent, baggage;  // W3C trace context from the peer, checked (trace_context.h), for telemetry
  };
  Request request_;

 private:
  void ArmConnectAttempt(std::chrono::milliseconds after);
  void Redial();
  void AttachBio();
  void Handshake();
  void ReadTls();
  bool MoreTlsBuffered() const;  // SSL_read can go on without waiting for the socket
  void SendGathered();           // gathered_ to the pod sockets: one sendmsg per stream, the rest to to_tcp
  void SendChunks(HboneStream* s, const Chunk* c, size_t n);
  bool FlushTls();
  bool WriteRecords();    // SSL_write of out_ while the socket takes it; false when the session was closed
  size_t Unsent() const;  // TLS bytes written by BoringSSL that are not on the socket yet (the BIO's batch)
  void StartKeepalive();

  // nghttp2 trampolines.
  static ssize_t SendCb(nghttp2_session*, const uint8_t* data, size_t len, int, void* user);
  static int SendDataCb(nghttp2_session*, nghttp2_frame* frame, const uint8_t* hd, size_t len, nghttp2_data_source* src,
                        void* user);
  static ssize_t ReadLengthCb(nghttp2_session*, uint8_t, int32_t, int32_t, int32_t, uint32_t remote_max, void*);
  static ssize_t DataReadCb(nghttp2_session*, int32_t, uint8_t*, size_t len, uint32_t* flags, nghttp2_data_source* src,
                            void* user);
  static int FrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int DataChunkCb(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len, void* user);
  static int StreamCloseCb(nghttp2_session*, int32_t id, uint32_t code, void* user);
  static int HeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int BeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* user);
};

}  // namespace zm::proxy
