// A RequestMirror's copy of one HTTP request (issue 17): written to its own upstream stream, fire-and-forget. The
// response is read and thrown away; an error, a slow mirror backend or a timeout only closes this stream, never the
// client's. The copy says "connection: close", so the mirror backend ends the stream after its response.
#pragma once

#include <chrono>
#include <string>

#include "agent/proxy/worker_context.h"

namespace zm::proxy {

class HttpMirror : public Closable, public IoHandler {
 public:
  // At most this many mirrored requests in flight per worker; past it a copy is dropped (its request is unaffected).
  static constexpr uint32_t kMaxInFlight = 512;

  // Takes ownership of |fd| (an upstream stream, e.g. UpstreamOpener's) and sends |request| on it; the stream is
  // closed when the mirror backend closes it, on any error, or after |timeout|. False (fd closed) when the worker
  // already has kMaxInFlight mirrors open.
  static bool Start(WorkerContext& ctx, int fd, std::string request, std::chrono::milliseconds timeout);
  static uint32_t InFlight(const WorkerContext& ctx) { return ctx.http.mirrors_in_flight; }

  void OnIo(uint32_t ev) override;
  void ForceClose() override { Close(); }
  ~HttpMirror() override;  // via EventLoop::DeleteLater only

 private:
  HttpMirror(WorkerContext& ctx, int fd, std::string request);
  void Flush();
  void Close();

  WorkerContext& ctx_;
  int fd_;
  std::string out_;
  uint64_t timer_ = 0;
  bool done_ = false;
};

}  // namespace zm::proxy
