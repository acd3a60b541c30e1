// HTTP(S) to the Kubernetes API server with libcurl: plain requests and line-streamed watches. Thread-safe: a call
// uses a curl handle no other call uses meanwhile. Requests reuse idle handles (a small pool shared by copies of this
// object), so their keep-alive connections (and TLS sessions) are reused instead of a new TLS handshake per request;
// a 429 (API Priority and Fairness) is retried after its Retry-After, twice at most.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "controller/k8s/client_config.h"

namespace zm::k8s {

struct HttpResponse {
  long status = 0;    // HTTP status; 0 = transport error (see error)
  std::string body;   // the response body (for streams: only what was not consumed as lines, e.g. an error Status)
  std::string error;  // transport error text, empty on a completed exchange
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
  std::string Describe() const;  // "HTTP 403: <message>" / "transport: <error>"
};

struct CurlEasyDeleter {
  void operator()(CURL* c) const;
};
using RawConnection = std::unique_ptr<CURL, CurlEasyDeleter>;

class Http {
 public:
  explicit Http(ClientConfig config);

  // `path` starts with '/' (query included). Body and content type only for methods that carry one.
  HttpResponse Request(const std::string& method, const std::string& path, const std::string& body = "",
                       const std::string& content_type = "", int timeout_seconds = 30) const;

  // GET that delivers the 2xx response body line by line (watch events). Returns when the server ends the response,
  // `timeout_seconds` pass, `on_line` returns false, or *stop becomes true (within about a second).
  HttpResponse Stream(const std::string& path, int timeout_seconds,
                      const std::function<bool(std::string_view line)>& on_line, const std::atomic<bool>* stop) const;

  // TCP (+ TLS with this config's trust and client certificate) to the API server, nothing sent
  // (CURLOPT_CONNECT_ONLY): for a protocol libcurl does not speak, a WebSocket upgrade, over curl_easy_send/recv.
  // nullptr with *error when the connection or handshake fails.
  RawConnection ConnectRaw(int timeout_seconds, std::string* error) const;
  // The bearer token to send ("" when the config has none; the token file is re-read). false with *error.
  bool BearerToken(std::string* token, std::string* error) const;

  const ClientConfig& config() const { return config_; }

  static constexpr int kMaxRetriesOn429 = 2;
  static constexpr int kMaxRetryAfterSeconds = 10;  // a longer Retry-After is the caller's to wait (its backoff)

 private:
  struct HandlePool {  // idle easy handles: each keeps its connection cache
    std::mutex mu;
    std::vector<CURL*> idle;
    ~HandlePool();
  };
  static constexpr size_t kMaxIdleHandles = 4;

  ClientConfig config_;
  std::shared_ptr<HandlePool> pool_ = std::make_shared<HandlePool>();
};

}  // namespace zm::k8s
