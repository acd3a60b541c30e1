#include "controller/k8s/http.h"

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "controller/fs_util.h"

namespace zm::k8s {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  const std::function<bool(std::string_view)>* on_line = nullptr;  // null: collect the body
  const std::atomic<bool>* stop = nullptr;
  std::string body;     // collected body (non-stream, or non-2xx stream)
  std::string pending;  // partial line of a stream
  bool streaming = false;
  bool aborted = false;  // on_line asked to stop
  CURL* curl = nullptr;
};

size_t OnData(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t n = size * nmemb;
  if (t->on_line == nullptr) {
    if (t->body.size() + n > (256u << 20)) return 0;  // refuse absurd bodies
    t->body.append(ptr, n);
    return n;
  }
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code >= 300) {  // an error Status object: keep it for the caller
    if (t->body.size() < (1u << 20)) t->body.append(ptr, n);
    return n;
  }
  t->pending.append(ptr, n);
  size_t start = 0;
  for (size_t nl; (nl = t->pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(t->pending.data() + start, nl - start);
    if (!line.empty() && !(*t->on_line)(line)) {
      t->aborted = true;
      return 0;
    }
  }
  t->pending.erase(0, start);
  if (t->pending.size() > (64u << 20)) return 0;  // one event cannot be this large
  return n;
}

int OnProgress(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(userdata);
  return t->stop != nullptr && t->stop->load() ? 1 : 0;
}

std::string Token(const ClientConfig& c, std::string* error) {
  if (!c.token_file.empty()) {
    auto t = ctrl::ReadFile(c.token_file, error, 64 << 10);
    if (!t) return "";
    std::string s = *t;
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
  }
  return c.token;
}

// Trust and client certificate of `cfg` (curl copies the blobs, so the handle may outlive `cfg`).
void ApplyTls(CURL* c, const ClientConfig& cfg) {
  auto blob = [](const std::string& pem) {
    return curl_blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  };
  if (cfg.insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (!cfg.ca_pem.empty()) {
    curl_blob ca = blob(cfg.ca_pem);
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
  }
  if (!cfg.client_cert_pem.empty()) {
    curl_blob cert = blob(cfg.client_cert_pem), key = blob(cfg.client_key_pem);
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  }
}

// One exchange on handle `c` (reset here: options go, its cached connections stay). *retry_after: the response's
// Retry-After in seconds (0 when absent).
HttpResponse Perform(CURL* c, const ClientConfig& cfg, const std::string& method, const std::string& path,
                     const std::string& body, const std::string& content_type, int timeout_seconds, Transfer* t,
                     long* retry_after = nullptr) {
  HttpResponse resp;
  curl_easy_reset(c);
  t->curl = c;
  std::string url = cfg.server + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(timeout_seconds));
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  // The API server sends a watch as one long HTTP/1.1 chunked response; HTTP/2 would work too but buys nothing here.
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);

  ApplyTls(c, cfg);

  curl_slist* raw = nullptr;
  raw = curl_slist_append(raw, "Accept: application/json");
  raw = curl_slist_append(raw, "User-Agent: mesh-controller (zeromesh)");
  std::string token_err;
  std::string token = Token(cfg, &token_err);
  if (!token_err.empty()) {
    curl_slist_free_all(raw);
    resp.error = "token: " + token_err;
    return resp;
  }
  std::string auth = "Authorization: Bearer " + token;
  if (!token.empty()) raw = curl_slist_append(raw, auth.c_str());
  std::string ctype = "Content-Type: " + content_type;
  if (!content_type.empty()) raw = curl_slist_append(raw, ctype.c_str());
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);  // errbuf and headers die with this frame; the handle lives on
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  if (retry_after != nullptr) {
    curl_off_t after = 0;
    *retry_after = curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &after) == CURLE_OK ? static_cast<long>(after) : 0;
  }
  resp.body = std::move(t->body);
  bool stopped = t->stop != nullptr && t->stop->load();
  if (rc == CURLE_OK || t->aborted || stopped) return resp;
  // A watch that runs into our client-side timeout ended normally as far as the caller is concerned.
  if (rc == CURLE_OPERATION_TIMEDOUT && t->on_line != nullptr && resp.status >= 200 && resp.status < 300) return resp;
  resp.error = std::string(curl_easy_strerror(rc)) + (errbuf[0] ? std::string(": ") + errbuf : "");
  return resp;
}

}  // namespace

std::string HttpResponse::Describe() const {
  if (!error.empty()) return "transport: " + error;
  std::string msg;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    msg = j["message"].get<std::string>();
  } else {
    msg = body.substr(0, 200);
  }
  return "HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg);
}

Http::Http(ClientConfig config) : config_(std::move(config)) {}

void CurlEasyDeleter::operator()(CURL* c) const {
  curl_easy_cleanup(c);
}

RawConnection Http::ConnectRaw(int timeout_seconds, std::string* error) const {
  GlobalInit();
  RawConnection curl(curl_easy_init());
  if (!curl) {
    *error = "curl_easy_init failed";
    return nullptr;
  }
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, config_.server.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(timeout_seconds));
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);  // ALPN http/1.1: upgrades are HTTP/1.1
  ApplyTls(c, config_);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  if (rc != CURLE_OK) {
    *error = std::string(curl_easy_strerror(rc)) + (errbuf[0] ? std::string(": ") + errbuf : "");
    return nullptr;
  }
  return curl;
}

bool Http::BearerToken(std::string* token, std::string* error) const {
  std::string err;
  *token = Token(config_, &err);
  if (!err.empty()) *error = "token: " + err;
  return err.empty();
}

Http::HandlePool::~HandlePool() {
  for (CURL* c : idle) curl_easy_cleanup(c);
}

HttpResponse Http::Request(const std::string& method, const std::string& path, const std::string& body,
                           const std::string& content_type, int timeout_seconds) const {
  GlobalInit();
  CURL* c = nullptr;
  {
    std::lock_guard lock(pool_->mu);
    if (!pool_->idle.empty()) {
      c = pool_->idle.back();
      pool_->idle.pop_back();
    }
  }
  if (c == nullptr && (c = curl_easy_init()) == nullptr) {
    HttpResponse resp;
    resp.error = "curl_easy_init failed";
    return resp;
  }
  HttpResponse resp;
  for (int attempt = 0;; ++attempt) {
    Transfer t;
    long retry_after = 0;
    resp = Perform(c, config_, method, path, body, content_type, timeout_seconds, &t, &retry_after);
    // 429: the API server sheds load (API Priority and Fairness) and says when to come back. Wait that long (a
    // second when it does not say) if it is short; a longer wait is left to the caller's own backoff.
    if (resp.status != 429 || attempt >= kMaxRetriesOn429 || retry_after > kMaxRetryAfterSeconds) break;
    std::this_thread::sleep_for(std::chrono::seconds(retry_after > 0 ? retry_after : 1));
  }
  std::lock_guard lock(pool_->mu);
  if (pool_->idle.size() < kMaxIdleHandles) {
    pool_->idle.push_back(c);
  } else {
    curl_easy_cleanup(c);
  }
  return resp;
}

HttpResponse Http::Stream(const std::string& path, int timeout_seconds,
                          const std::function<bool(std::string_view)>& on_line, const std::atomic<bool>* stop) const {
  GlobalInit();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());  // a watch holds its connection: not pooled
  if (!curl) {
    HttpResponse resp;
    resp.error = "curl_easy_init failed";
    return resp;
  }
  Transfer t;
  t.on_line = &on_line;
  t.stop = stop;
  t.streaming = true;
  return Perform(curl.get(), config_, "GET", path, "", "", timeout_seconds, &t);
}

}  // namespace zm::k8s
