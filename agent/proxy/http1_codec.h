// HTTP/1.1 framing for the node proxy's L7 path, on llhttp (third_party/llhttp): a request parser that hands the
// connection one parsed head at a time and the decoded body, a serializer for the (possibly modified) head, and a
// response framer that only finds where a response ends so its bytes can be relayed verbatim.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zm::proxy {

struct HttpRequestHead {
  std::string method;  // "GET"
  std::string target;  // the request-target as received ("/a?b=c", or "host:port" for CONNECT)
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case, in arrival order
  bool chunked = false;                                      // the body comes chunked (re-chunked when forwarded)
  bool upgrade = false;  // Upgrade (e.g. WebSocket) or CONNECT: the connection becomes a byte stream after it
  bool keep_alive = true;

  std::string_view Path() const;                                 // target up to '?'
  std::string_view Query() const;                                // after '?'
  const std::string* Header(std::string_view lower_name) const;  // the first one
};

// Limits on what a client may send in one head; over them the connection gets a 431 and is closed.
struct HttpLimits {
  size_t max_head_bytes = 64 * 1024;  // request line + headers
  size_t max_headers = 100;
};

class Http1RequestParser {
 public:
  // What ended a Feed. Whatever it is, head_ready() says a head was completed in this call (route it first), and
  // body() holds the decoded body bytes parsed in this call (forward them next).
  enum class Event {
    kNeedMore,     // every byte was consumed, the request is not complete yet
    kEnd,          // the current request is complete; the bytes after it are the next one's (next Feed)
    kUpgrade,      // an Upgrade / CONNECT request ended: the bytes after it are the tunnel's (never Feed them)
    kError,        // malformed: answer 400 and close
    kHeadTooLarge  // over HttpLimits: answer 431 and close
  };

  explicit Http1RequestParser(HttpLimits limits = {});
  Http1RequestParser(const Http1RequestParser&) = delete;
  Http1RequestParser& operator=(const Http1RequestParser&) = delete;

  // Parses from |data|; returns at the first event and sets *consumed to the bytes used (feed the rest again).
  Event Feed(const char* data, size_t len, size_t* consumed);
  bool head_ready() const { return head_ready_; }
  const HttpRequestHead& head() const { return head_; }
  HttpRequestHead& head() { return head_; }
  const std::string& body() const { return body_; }
  const char* error() const { return error_.c_str(); }

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);
  bool CountHead(size_t len);  // false (and too_large_) over the limit

  llhttp_settings_t settings_;
  llhttp_t parser_;
  HttpLimits limits_;
  HttpRequestHead head_;
  std::string body_;
  bool in_value_ = false;
  bool in_trailers_ = false;  // the head is complete: header callbacks are a chunked body's trailers now
  bool head_ready_ = false;
  bool too_large_ = false;
  bool obs_fold_ = false;
  size_t head_bytes_ = 0;
  // Where the bytes given to llhttp_execute start, and the last byte llhttp consumed before them: what precedes a
  // header value span, to recognise obsolete line folding.
  const char* feed_start_ = nullptr;
  char prev_byte_ = 0;
  std::string error_;
};

// The head as it goes upstream: request line, the headers in order (HTTP/1.1 names are case-insensitive).
std::string SerializeRequestHead(const HttpRequestHead& head);
// A response head: status line and headers (names lower case).
std::string SerializeResponseHead(int version_minor, int status, const std::string& reason,
                                  const std::vector<std::pair<std::string, std::string>>& headers);
// One chunk of a chunked body (empty data: nothing), and the last chunk.
void AppendChunk(std::string_view data, std::string* out);
constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Finds the end of one response (Content-Length, chunked, close-delimited, no body for HEAD / 204 / 304); 1xx
// interim responses (100 Continue) are part of the exchange, not its end. 101 ends it and the stream is a tunnel.
class Http1ResponseFramer {
 public:
  Http1ResponseFramer();
  Http1ResponseFramer(const Http1ResponseFramer&) = delete;
  Http1ResponseFramer& operator=(const Http1ResponseFramer&) = delete;

  // Before each response. |capture_head|: stop after each response head (kHead) so it can be rewritten
  // (ResponseHeaderModifier); the head's bytes are then not the caller's to forward (in_head(), kHead).
  void Start(bool head_request, bool capture_head = false);
  enum class Result { kNeedMore, kHead, kComplete, kError };
  // *consumed: bytes that belong to this response (all of |len| unless it completed or failed).
  Result Feed(const char* data, size_t len, size_t* consumed);
  // The upstream closed: kComplete when that ended a close-delimited response, kError when the response is cut.
  Result Finish();
  int status() const { return status_; }
  bool keep_alive() const { return keep_alive_; }  // the upstream connection may carry another request
  bool started() const { return started_; }
  // Capture mode: inside a head (bytes consumed now belong to it), and the last head parsed.
  bool in_head() const { return in_head_; }
  int version_minor() const { return version_minor_; }
  const std::string& reason() const { return reason_; }
  std::vector<std::pair<std::string, std::string>>& headers() { return headers_; }

 private:
  static int OnStatus(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnMessageBegin(llhttp_t* p);
  static int OnMessageComplete(llhttp_t* p);

  llhttp_settings_t settings_;
  llhttp_t parser_;
  bool head_request_ = false;
  bool capture_ = false;
  bool in_head_ = false;
  bool head_paused_ = false;
  bool in_value_ = false;
  int version_minor_ = 1;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  bool complete_ = false;
  bool started_ = false;
  bool keep_alive_ = true;
  int status_ = 0;
};

}  // namespace zm::proxy
