#include "agent/proxy/h2_mirror.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/proxy/h2_nv.h"
#include "agent/proxy/http_mirror.h"
#include "common/log.h"

namespace zm::proxy {

bool H2Mirror::Start(WorkerContext& ctx, int fd, Request req, std::chrono::milliseconds timeout) {
  if (ctx.http.mirrors_in_flight >= HttpMirror::kMaxInFlight) {
    close(fd);
    return false;
  }
  auto* m = new H2Mirror(ctx, fd, std::move(req));
  if (!m->Submit()) {
    m->Close();
    return false;
  }
  m->timer_ = ctx.loop.AddTimer(timeout, [m] {
    m->timer_ = 0;
    m->Close();
  });
  m->Settle();
  return true;
}

H2Mirror::H2Mirror(WorkerContext& ctx, int fd, Request req) : ctx_(ctx), req_(std::move(req)) {
  ++ctx_.http.mirrors_in_flight;
  ctx_.live.insert(this);
  wire_.fd = fd;
  wire_.writable = true;  // a fresh upstream stream; EAGAIN says otherwise
  ctx_.loop.Add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, this);
}

H2Mirror::~H2Mirror() {
  ctx_.live.erase(this);
}

bool H2Mirror::Submit() {
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
  // The response's DATA is not looked at: nghttp2's automatic WINDOW_UPDATEs let the backend send it all.
  int rv = nghttp2_session_client_new(&wire_.h2, cbs, this);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  if (nghttp2_submit_settings(wire_.h2, NGHTTP2_FLAG_NONE, settings, 1) != 0) return false;
  static const std::string kMethod = ":method", kScheme = ":scheme", kAuthority = ":authority", kPath = ":path";
  std::vector<nghttp2_nv> nva;
  nva.reserve(req_.headers.size() + 4);
  nva.push_back(Nv(kMethod, req_.method));
  nva.push_back(Nv(kScheme, req_.scheme));
  if (!req_.authority.empty()) nva.push_back(Nv(kAuthority, req_.authority));
  nva.push_back(Nv(kPath, req_.path));
  for (const auto& [n, v] : req_.headers) nva.push_back(Nv(n, v));
  nghttp2_data_provider prd{};
  prd.read_callback = ReadBody;
  const bool body = !req_.body.empty() || !req_.trailers.empty();
  int32_t id = nghttp2_submit_request(wire_.h2, nullptr, nva.data(), nva.size(), body ? &prd : nullptr, nullptr);
  if (id < 0) {
    log::Debug("mirror request not sent", {{"path", req_.path.substr(0, 256)}, {"reason", nghttp2_strerror(id)}});
    return false;
  }
  return true;
}

void H2Mirror::OnIo(uint32_t ev) {
  if (done_) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) wire_.readable = true;
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) wire_.writable = true;
  std::string why;
  if (!wire_.Read(&why) || wire_.eof) {
    Close();  // the mirror backend failed or went away: nothing more to do for a copy
    return;
  }
  Settle();
}

void H2Mirror::Settle() {
  if (done_) return;
  std::string why;
  if (!wire_.Write(&why) || wire_.Done()) Close();
}

void H2Mirror::Close() {
  if (done_) return;
  done_ = true;
  if (timer_ != 0) ctx_.loop.CancelTimer(timer_);
  timer_ = 0;
  ctx_.loop.Remove(wire_.fd);
  close(wire_.fd);
  wire_.fd = -1;
  --ctx_.http.mirrors_in_flight;
  ctx_.loop.DeleteLater(this);
}

int H2Mirror::OnStreamClose(nghttp2_session* h2, int32_t, uint32_t, void*) {
  // The one stream is over (answered or reset): GOAWAY, after which the session wants nothing more (Settle closes).
  nghttp2_session_terminate_session(h2, NGHTTP2_NO_ERROR);
  return 0;
}

ssize_t H2Mirror::ReadBody(nghttp2_session* h2, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source*, void* user) {
  auto* self = static_cast<H2Mirror*>(user);
  const std::string& body = self->req_.body;
  size_t n = std::min(len, body.size() - self->sent_);
  std::memcpy(buf, body.data() + self->sent_, n);
  self->sent_ += n;
  if (self->sent_ == body.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!self->req_.trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nva;
      nva.reserve(self->req_.trailers.size());
      for (const auto& [n2, v] : self->req_.trailers) nva.push_back(Nv(n2, v));
      nghttp2_submit_trailer(h2, id, nva.data(), nva.size());
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace zm::proxy
