// A blocking, hand-driven HBONE client for tests: one mTLS connection from a chosen source address, CONNECT requests
// with exactly the headers a test wants (several `forwarded` lines, a foreign :authority), the :status of each.
#pragma once

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/tls/context.h"

namespace zm::testing {

class RawHbone {
 public:
  ~RawHbone();
  // TCP from |src| (bound) to |dst|:|port|, TLS 1.3 + ALPN h2 with |creds|, HTTP/2 preface. nullptr + |error|.
  static std::unique_ptr<RawHbone> Dial(const char* src, const char* dst, uint16_t port, const tls::Credentials& creds,
                                        const tls::CertList& roots, const std::string& trust_domain,
                                        std::string* error);
  // Sends CONNECT |authority| with one `forwarded` header line per entry; waits for the response. Returns the
  // :status, or 0 with |error| set when the connection closed or timed out first. A 200 stream is cancelled at once.
  int Connect(const std::string& authority, const std::vector<std::string>& forwarded, std::string* error);
  // Sends the HTTP/2 preface and SETTINGS, and nothing else (no request).
  bool SendPreface(std::string* error);
  // Sends |n| CONNECT |authority| requests in one write, before reading anything (so the server's SETTINGS cannot
  // have been acknowledged yet), then reads until each has a :status or was closed. Streams answered 200 stay open.
  bool OpenStreams(const std::string& authority, int n, std::vector<int32_t>* ids, std::string* error);
  int status(int32_t id) { return status_[id]; }
  bool closed(int32_t id) { return closed_[id]; }
  uint32_t close_code(int32_t id) { return close_code_[id]; }  // RST_STREAM error code (0: NO_ERROR or open)
  uint32_t peer_max_concurrent_streams() const { return peer_max_streams_; }  // from the server's SETTINGS (0: none)
  // Reads (and processes) whatever the server sends until it closes the connection: true if that happened within
  // |timeout_ms|.
  bool WaitClosed(int timeout_ms);

 private:
  RawHbone() = default;
  bool Pump(int32_t stream, std::string* error);  // until |stream| has a status or closed

  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int OnClose(nghttp2_session*, int32_t id, uint32_t code, void* user);
  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user);

  int fd_ = -1;
  bssl::UniquePtr<SSL_CTX> ctx_;
  bssl::UniquePtr<SSL> ssl_;
  nghttp2_session* h2_ = nullptr;
  std::string out_;
  std::map<int32_t, int> status_;
  std::map<int32_t, bool> closed_;
  std::map<int32_t, uint32_t> close_code_;
  uint32_t peer_max_streams_ = 0;
};

}  // namespace zm::testing
