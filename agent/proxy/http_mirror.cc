#include "agent/proxy/http_mirror.h"

#include <unistd.h>

#include <cerrno>

namespace zm::proxy {

bool HttpMirror::Start(WorkerContext& ctx, int fd, std::string request, std::chrono::milliseconds timeout) {
  if (ctx.http.mirrors_in_flight >= kMaxInFlight) {
    close(fd);
    return false;
  }
  auto* m = new HttpMirror(ctx, fd, std::move(request));
  m->timer_ = ctx.loop.AddTimer(timeout, [m] {
    m->timer_ = 0;
    m->Close();
  });
  m->Flush();
  return true;
}

HttpMirror::HttpMirror(WorkerContext& ctx, int fd, std::string request) : ctx_(ctx), fd_(fd), out_(std::move(request)) {
  ++ctx_.http.mirrors_in_flight;
  ctx_.live.insert(this);
  ctx_.loop.Add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, this);
}

HttpMirror::~HttpMirror() {
  ctx_.live.erase(this);
}

void HttpMirror::OnIo(uint32_t ev) {
  if (done_) return;
  if (ev & EPOLLOUT) Flush();
  if (done_ || !(ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) return;
  char buf[16 * 1024];
  while (true) {  // the response is discarded as it comes
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    Close();  // the mirror backend is done (or failed)
    return;
  }
}

void HttpMirror::Flush() {
  while (!out_.empty()) {
    ssize_t n = write(fd_, out_.data(), out_.size());
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    Close();
    return;
  }
  out_.shrink_to_fit();
}

void HttpMirror::Close() {
  if (done_) return;
  done_ = true;
  if (timer_ != 0) ctx_.loop.CancelTimer(timer_);
  timer_ = 0;
  ctx_.loop.Remove(fd_);
  close(fd_);
  fd_ = -1;
  --ctx_.http.mirrors_in_flight;
  ctx_.loop.DeleteLater(this);
}

}  // namespace zm::proxy
