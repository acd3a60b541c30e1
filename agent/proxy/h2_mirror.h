// A RequestMirror's copy of one HTTP/2 (h2c or gRPC) request (issue 17), fire-and-forget: its own HTTP/2
// prior-knowledge client session on its own upstream stream (UpstreamOpener's, so it goes through the mesh like the
// primary), one request stream, then GOAWAY. The response is read and thrown away; an error, a slow mirror backend or
// the timeout only closes this session, never the client's stream. Shares the worker's bound on mirrors in flight
// with the HTTP/1.1 copies (HttpMirror).
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "agent/proxy/h2_wire.h"
#include "agent/proxy/worker_context.h"

namespace zm::proxy {

class H2Mirror : public Closable, public IoHandler {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  struct Request {
    std::string method, scheme, authority, path;  // pseudo-headers; |authority| already carries "-shadow"
    Headers headers;                              // regular headers, lower case
    std::string body;
    Headers trailers;  // sent after the body when not empty (gRPC clients rarely send any)
  };

  // Takes ownership of |fd| (a fresh upstream stream) and sends |req| on it; closed once the response ended, on any
  // error, or after |timeout|. False (fd closed, nothing sent) when the worker already has its bound of mirrors open
  // or the session cannot be made.
  static bool Start(WorkerContext& ctx, int fd, Request req, std::chrono::milliseconds timeout);

  void OnIo(uint32_t ev) override;
  void ForceClose() override { Close(); }
  ~H2Mirror() override;  // via EventLoop::DeleteLater only

 private:
  H2Mirror(WorkerContext& ctx, int fd, Request req);
  bool Submit();
  void Settle();  // writes what the session has; closes when it is done or failed
  void Close();

  static int OnStreamClose(nghttp2_session* h2, int32_t id, uint32_t code, void* user);
  static ssize_t ReadBody(nghttp2_session* h2, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source* src, void* user);

  WorkerContext& ctx_;
  H2Wire wire_;
  Request req_;
  size_t sent_ = 0;  // bytes of req_.body the session took
  uint64_t timer_ = 0;
  bool done_ = false;
};

}  // namespace zm::proxy
