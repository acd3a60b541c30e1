#include "tests/unit/proxy/raw_hbone.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "tests/unit/proxy/loopback.h"

namespace zm::testing {
namespace {

nghttp2_nv Nv(const std::string& name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

RawHbone::~RawHbone() {
  if (h2_) nghttp2_session_del(h2_);
  ssl_.reset();
  if (fd_ >= 0) close(fd_);
}

std::unique_ptr<RawHbone> RawHbone::Dial(const char* src, const char* dst, uint16_t port, const tls::Credentials& creds,
                                         const tls::CertList& roots, const std::string& trust_domain,
                                         std::string* error) {
  std::unique_ptr<RawHbone> c(new RawHbone);
  c->fd_ = ConnectFrom(src, dst, port, 5000);
  if (c->fd_ < 0) {
    *error = "tcp connect failed";
    return nullptr;
  }
  c->ctx_ = tls::NewClientContext(creds, roots, trust_domain, error);
  if (!c->ctx_) return nullptr;
  // The test client does not care who the server is (the proxy's server checks are what is under test).
  SSL_CTX_set_custom_verify(c->ctx_.get(), SSL_VERIFY_PEER,
                            [](SSL*, uint8_t*) -> ssl_verify_result_t { return ssl_verify_ok; });
  c->ssl_.reset(SSL_new(c->ctx_.get()));
  SSL_set_fd(c->ssl_.get(), c->fd_);
  if (SSL_connect(c->ssl_.get()) != 1) {
    *error = "TLS handshake failed";
    return nullptr;
  }
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, Send);
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnClose);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrame);
  nghttp2_session_client_new(&c->h2_, cbs, c.get());
  nghttp2_session_callbacks_del(cbs);
  nghttp2_submit_settings(c->h2_, NGHTTP2_FLAG_NONE, nullptr, 0);
  return c;
}

int RawHbone::Connect(const std::string& authority, const std::vector<std::string>& forwarded, std::string* error) {
  const std::string method = ":method", connect = "CONNECT", auth = ":authority", fwd = "forwarded";
  std::vector<nghttp2_nv> nva = {Nv(method, connect), Nv(auth, authority)};
  for (const auto& f : forwarded) nva.push_back(Nv(fwd, f));
  int32_t id = nghttp2_submit_request(h2_, nullptr, nva.data(), nva.size(), nullptr, nullptr);
  if (id < 0) {
    *error = nghttp2_strerror(id);
    return 0;
  }
  if (!Pump(id, error)) return 0;
  int st = status_[id];
  if (st == 0) {
    *error = "stream closed without a status";
    return 0;
  }
  if (st == 200) {
    nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    nghttp2_session_send(h2_);
    SSL_write(ssl_.get(), out_.data(), static_cast<int>(out_.size()));
    out_.clear();
  }
  return st;
}

bool RawHbone::SendPreface(std::string* error) {
  if (nghttp2_session_send(h2_) != 0) {
    *error = "nghttp2 send";
    return false;
  }
  if (!out_.empty() && SSL_write(ssl_.get(), out_.data(), static_cast<int>(out_.size())) <= 0) {
    *error = "TLS write failed";
    return false;
  }
  out_.clear();
  return true;
}

bool RawHbone::OpenStreams(const std::string& authority, int n, std::vector<int32_t>* ids, std::string* error) {
  const std::string method = ":method", connect = "CONNECT", auth = ":authority";
  nghttp2_nv nva[] = {Nv(method, connect), Nv(auth, authority)};
  for (int i = 0; i < n; ++i) {
    int32_t id = nghttp2_submit_request(h2_, nullptr, nva, 2, nullptr, nullptr);
    if (id < 0) {
      *error = nghttp2_strerror(id);
      return false;
    }
    ids->push_back(id);
  }
  if (!SendPreface(error)) return false;  // everything submitted goes out in one write
  for (int32_t id : *ids) {
    if (!Pump(id, error)) return false;
  }
  return true;
}

bool RawHbone::WaitClosed(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  uint8_t buf[16384];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    int r = SSL_read(ssl_.get(), buf, sizeof(buf));
    if (r > 0) {
      nghttp2_session_mem_recv(h2_, buf, static_cast<size_t>(r));
      continue;
    }
    int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ) continue;
    return true;  // EOF, reset or a TLS error: the server closed
  }
}

bool RawHbone::Pump(int32_t stream, std::string* error) {
  uint8_t buf[16384];
  while (status_[stream] == 0 && !closed_[stream]) {
    if (nghttp2_session_send(h2_) != 0) {
      *error = "nghttp2 send";
      return false;
    }
    if (!out_.empty()) {
      if (SSL_write(ssl_.get(), out_.data(), static_cast<int>(out_.size())) <= 0) {
        *error = "TLS write failed";
        return false;
      }
      out_.clear();
    }
    int n = SSL_read(ssl_.get(), buf, sizeof(buf));  // the socket has a receive timeout (ConnectFrom)
    if (n <= 0) {
      *error = "connection closed or timed out";
      return false;
    }
    if (nghttp2_session_mem_recv(h2_, buf, static_cast<size_t>(n)) < 0) {
      *error = "nghttp2 recv";
      return false;
    }
  }
  return true;
}

ssize_t RawHbone::Send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
  static_cast<RawHbone*>(user)->out_.append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

int RawHbone::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  if (std::string_view(reinterpret_cast<const char*>(name), namelen) != ":status") return 0;
  static_cast<RawHbone*>(user)->status_[frame->hd.stream_id] =
      std::stoi(std::string(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

int RawHbone::OnClose(nghttp2_session*, int32_t id, uint32_t code, void* user) {
  static_cast<RawHbone*>(user)->closed_[id] = true;
  static_cast<RawHbone*>(user)->close_code_[id] = code;
  return 0;
}

int RawHbone::OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_SETTINGS || (frame->hd.flags & NGHTTP2_FLAG_ACK)) return 0;
  for (size_t i = 0; i < frame->settings.niv; ++i) {
    if (frame->settings.iv[i].settings_id == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
      static_cast<RawHbone*>(user)->peer_max_streams_ = frame->settings.iv[i].value;
    }
  }
  return 0;
}

}  // namespace zm::testing
