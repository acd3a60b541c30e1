// One end of an HTTP/2 connection for the proxy tests (h2_destination_test, h2_mirror_test): a test nghttp2 client or
// server on a non-blocking socket, pumped by the test thread.
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace zm::testing {

// One end of an HTTP/2 connection on a blocking-free socket, pumped by the test. As the pod (server) it answers every
// request, once it ended, with 200, a body naming the path and the traceparent it got, and grpc-status 0 trailers.
struct H2Peer {
  using Headers = std::vector<std::pair<std::string, std::string>>;

  struct Stream {
    Headers headers, trailers;
    std::string body;
    bool closed = false;
  };
  int fd = -1;
  bool server = false;
  nghttp2_session* h2 = nullptr;
  std::map<int32_t, Stream> streams;
  bool goaway = false;                    // the peer sent GOAWAY
  bool unavailable = false;               // as the pod: every answer is trailers-only grpc-status 14
  std::map<int32_t, std::string> bodies;  // as the client: request DATA still to send, by stream id

  H2Peer(int f, bool is_server) : fd(f), server(is_server) {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n,
                                                             size_t nl, const uint8_t* v, size_t vl, uint8_t, void* u) {
      auto* p = static_cast<H2Peer*>(u);
      Stream& s = p->streams[f->hd.stream_id];
      bool trailer = f->headers.cat == NGHTTP2_HCAT_HEADERS;
      (trailer ? s.trailers : s.headers)
          .emplace_back(std::string(reinterpret_cast<const char*>(n), nl),
                        std::string(reinterpret_cast<const char*>(v), vl));
      return 0;
    });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* u) {
          static_cast<H2Peer*>(u)->streams[id].body.append(reinterpret_cast<const char*>(d), len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session* h2, const nghttp2_frame* f, void* u) {
      auto* p = static_cast<H2Peer*>(u);
      if (f->hd.type == NGHTTP2_GOAWAY) p->goaway = true;
      if (p->server && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
          (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) {
        p->Answer(h2, f->hd.stream_id);
      }
      return 0;
    });
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, int32_t id, uint32_t, void* u) {
      static_cast<H2Peer*>(u)->streams[id].closed = true;
      return 0;
    });
    if (server) {
      nghttp2_session_server_new(&h2, cbs, this);
    } else {
      nghttp2_session_client_new(&h2, cbs, this);
    }
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~H2Peer() {
    nghttp2_session_del(h2);
    close(fd);
  }

  static const std::string* Find(const Headers& h, const std::string& name) {
    for (const auto& [n, v] : h) {
      if (n == name) return &v;
    }
    return nullptr;
  }

  void Answer(nghttp2_session* session, int32_t id) {
    Stream& s = streams[id];
    const std::string* tp = Find(s.headers, "traceparent");
    // One body per stream, served from the pod's answer map (data providers read it by stream id).
    if (unavailable) {
      nghttp2_nv only[] = {{(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
                           {(uint8_t*)"content-type", (uint8_t*)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
                           {(uint8_t*)"grpc-status", (uint8_t*)"14", 11, 2, NGHTTP2_NV_FLAG_NONE}};
      nghttp2_submit_response(session, id, only, 3, nullptr);
      return;
    }
    answers[id] = *Find(s.headers, ":path") + " " + (tp ? *tp : "-") + (s.body.empty() ? "" : " body=" + s.body);
    nghttp2_nv hdrs[] = {{(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
                         {(uint8_t*)"content-type", (uint8_t*)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider prd{};
    prd.source.ptr = this;
    prd.read_callback = [](nghttp2_session* h2, int32_t sid, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
      auto* p = static_cast<H2Peer*>(src->ptr);
      std::string& a = p->answers[sid];
      size_t n = std::min(len, a.size());
      std::memcpy(buf, a.data(), n);
      a.erase(0, n);
      if (a.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {{(uint8_t*)"grpc-status", (uint8_t*)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
        nghttp2_submit_trailer(h2, sid, tr, 1);
      }
      return static_cast<ssize_t>(n);
    };
    nghttp2_submit_response(session, id, hdrs, 2, &prd);
  }

  int32_t Request(const std::string& path, const Headers& extra, const std::string& body = "") {
    Headers h = {{":method", "POST"}, {":scheme", "http"}, {":authority", "rpc.shop"}, {":path", path}};
    h.insert(h.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    if (body.empty()) return nghttp2_submit_request(h2, nullptr, nva.data(), nva.size(), nullptr, nullptr);
    nghttp2_data_provider prd{};
    prd.source.ptr = this;
    prd.read_callback = [](nghttp2_session*, int32_t sid, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
      std::string& b = static_cast<H2Peer*>(src->ptr)->bodies[sid];
      size_t n = std::min(len, b.size());
      std::memcpy(buf, b.data(), n);
      b.erase(0, n);
      if (b.empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    int32_t id = nghttp2_submit_request(h2, nullptr, nva.data(), nva.size(), &prd, nullptr);
    if (id > 0) bodies[id] = body;
    return id;
  }

  // Sends what the session has and feeds it what arrived; false once the socket closed.
  bool Pump() {
    const uint8_t* data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(h2, &data)) > 0) {
      if (send(fd, data, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return false;
    }
    uint8_t buf[16384];
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
      if (nghttp2_session_mem_recv(h2, buf, static_cast<size_t>(n)) < 0) return false;
    }
    return !(n == 0 || (n < 0 && errno != EAGAIN));
  }

  std::map<int32_t, std::string> answers;
};

}  // namespace zm::testing
