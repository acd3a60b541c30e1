#include "agent/proxy/http1_codec.h"

#include <cctype>
#include <cstdio>

namespace zm::proxy {
namespace {

void Lower(std::string* s) {
  for (char& c : *s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

}  // namespace

std::string_view HttpRequestHead::Path() const {
  std::string_view t(target);
  return t.substr(0, t.find('?'));
}

std::string_view HttpRequestHead::Query() const {
  std::string_view t(target);
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

const std::string* HttpRequestHead::Header(std::string_view lower_name) const {
  for (const auto& [n, v] : headers) {
    if (n == lower_name) return &v;
  }
  return nullptr;
}

Http1RequestParser::Http1RequestParser(HttpLimits limits) : limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = OnMessageBegin;
  settings_.on_url = OnUrl;
  settings_.on_header_field = OnHeaderField;
  settings_.on_header_value = OnHeaderValue;
  settings_.on_headers_complete = OnHeadersComplete;
  settings_.on_body = OnBody;
  settings_.on_message_complete = OnMessageComplete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

bool Http1RequestParser::CountHead(size_t len) {
  head_bytes_ += len;
  if (head_bytes_ <= limits_.max_head_bytes) return true;
  too_large_ = true;
  return false;
}

int Http1RequestParser::OnMessageBegin(llhttp_t* p) {
  auto* self = static_cast<Http1RequestParser*>(p->data);
  self->head_ = HttpRequestHead{};
  self->head_bytes_ = 0;
  self->in_value_ = false;
  self->in_trailers_ = false;
  return 0;
}

int Http1RequestParser::OnUrl(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<Http1RequestParser*>(p->data);
  if (!self->CountHead(len)) return -1;
  self->head_.target.append(at, len);
  return 0;
}

int Http1RequestParser::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<Http1RequestParser*>(p->data);
  // A chunked body's trailer fields come through the same callbacks. They are not forwarded (the body is re-chunked
  // and ends with an empty trailer section), and must not join the head: when the head and the trailers arrive in
  // one read, the head is serialized after both were parsed, and a trailer line like " x: y" would go upstream as a
  // folded continuation of the head's last field, e.g. its Transfer-Encoding (found by fuzz_http_framing).
  if (self->in_trailers_) return 0;
  if (!self->CountHead(len)) return -1;
  // llhttp may deliver a field in several pieces (split across reads): a new one starts after a value.
  if (self->in_value_ || self->head_.headers.empty()) {
    if (self->head_.headers.size() >= self->limits_.max_headers) {
      self->too_large_ = true;
      return -1;
    }
    self->head_.headers.emplace_back();
    self->in_value_ = false;
  }
  self->head_.headers.back().first.append(at, len);
  return 0;
}

int Http1RequestParser::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<Http1RequestParser*>(p->data);
  if (self->in_trailers_) return 0;
  if (!self->CountHead(len)) return -1;
  // llhttp 8 accepts obsolete line folding (a value continued on a line starting with SP/HT) and hands the
  // continuation over as another span of the same value, but it has already read the first line's tokens
  // (Connection: upgrade, Transfer-Encoding) on their own: forwarded as one line, the upstream would read them
  // differently (found by fuzz_http_framing). RFC 9112 5.2 lets a proxy reject it with 400, which we do. Only a
  // continuation span starts with SP/HT right after a line feed (an empty value comes as an empty span there).
  char before = at > self->feed_start_ ? at[-1] : self->prev_byte_;
  if (len > 0 && (at[0] == ' ' || at[0] == '\t') && before == '\n') {
    self->obs_fold_ = true;
    return -1;
  }
  self->in_value_ = true;
  self->head_.headers.back().second.append(at, len);
  return 0;
}

int Http1RequestParser::OnHeadersComplete(llhttp_t* p) {
  auto* self = static_cast<Http1RequestParser*>(p->data);
  // HTTP/1.0 and 1.1 only: llhttp also takes a version-less (0.9-style) request line, which we would forward as
  // something else (found by fuzz_http_framing).
  if (llhttp_get_http_major(p) != 1) return -1;
  HttpRequestHead& h = self->head_;
  h.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  h.version_minor = llhttp_get_http_minor(p);
  for (auto& kv : h.headers) Lower(&kv.first);
  h.chunked = (p->flags & F_CHUNKED) != 0;
  h.upgrade = llhttp_get_upgrade(p) != 0 || llhttp_get_method(p) == HTTP_CONNECT;
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  self->head_ready_ = true;
  self->in_trailers_ = true;
  return 0;
}

int Http1RequestParser::OnBody(llhttp_t* p, const char* at, size_t len) {
  static_cast<Http1RequestParser*>(p->data)->body_.append(at, len);
  return 0;
}

int Http1RequestParser::OnMessageComplete(llhttp_t* p) {
  // An upgrade ends in HPE_PAUSED_UPGRADE on its own; anything else pauses here, one request at a time.
  return llhttp_get_upgrade(p) != 0 ? 0 : HPE_PAUSED;
}

Http1RequestParser::Event Http1RequestParser::Feed(const char* data, size_t len, size_t* consumed) {
  body_.clear();
  *consumed = 0;
  llhttp_errno_t prev = llhttp_get_errno(&parser_);
  if (prev == HPE_PAUSED) {
    llhttp_resume(&parser_);
  } else if (prev != HPE_OK) {
    return too_large_ ? Event::kHeadTooLarge : Event::kError;
  }
  head_ready_ = false;
  feed_start_ = data;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    if (len > 0) prev_byte_ = data[len - 1];
    return Event::kNeedMore;
  }
  const char* pos = llhttp_get_error_pos(&parser_);
  *consumed = pos != nullptr && pos >= data && pos <= data + len ? static_cast<size_t>(pos - data) : len;
  if (*consumed > 0) prev_byte_ = data[*consumed - 1];
  if (err == HPE_PAUSED) return Event::kEnd;
  if (err == HPE_PAUSED_UPGRADE) return Event::kUpgrade;
  error_ = llhttp_errno_name(err);
  if (obs_fold_) {
    error_ += ": obsolete line folding in a header value (RFC 9112 5.2)";
  } else if (const char* r = llhttp_get_error_reason(&parser_)) {
    error_ += std::string(": ") + r;
  }
  return too_large_ ? Event::kHeadTooLarge : Event::kError;
}

std::string SerializeRequestHead(const HttpRequestHead& head) {
  std::string out;
  size_t size = head.method.size() + head.target.size() + 16;
  for (const auto& [n, v] : head.headers) size += n.size() + v.size() + 4;
  out.reserve(size);
  out.append(head.method).append(" ").append(head.target).append(" HTTP/1.");
  out.push_back(static_cast<char>('0' + (head.version_minor == 0 ? 0 : 1)));
  out.append("\r\n");
  for (const auto& [n, v] : head.headers) out.append(n).append(": ").append(v).append("\r\n");
  out.append("\r\n");
  return out;
}

std::string SerializeResponseHead(int version_minor, int status, const std::string& reason,
                                  const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = "HTTP/1.";
  out.push_back(version_minor == 0 ? '0' : '1');
  out.append(" ").append(std::to_string(status)).append(" ").append(reason).append("\r\n");
  for (const auto& [n, v] : headers) out.append(n).append(": ").append(v).append("\r\n");
  out.append("\r\n");
  return out;
}

void AppendChunk(std::string_view data, std::string* out) {
  if (data.empty()) return;  // an empty chunk would be the last one
  char size[20];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  out->append(size, static_cast<size_t>(n)).append(data).append("\r\n");
}

Http1ResponseFramer::Http1ResponseFramer() {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = OnMessageBegin;
  settings_.on_status = OnStatus;
  settings_.on_header_field = OnHeaderField;
  settings_.on_header_value = OnHeaderValue;
  settings_.on_headers_complete = OnHeadersComplete;
  settings_.on_message_complete = OnMessageComplete;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

void Http1ResponseFramer::Start(bool head_request, bool capture_head) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);  // a fresh parser: nothing of the last exchange carries over
  parser_.data = this;
  head_request_ = head_request;
  capture_ = capture_head;
  in_head_ = false;
  head_paused_ = false;
  complete_ = false;
  started_ = false;
  keep_alive_ = true;
  status_ = 0;
}

int Http1ResponseFramer::OnMessageBegin(llhttp_t* p) {
  auto* self = static_cast<Http1ResponseFramer*>(p->data);
  self->started_ = true;
  self->in_head_ = self->capture_;
  self->in_value_ = false;
  self->reason_.clear();
  self->headers_.clear();
  return 0;
}

int Http1ResponseFramer::OnStatus(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<Http1ResponseFramer*>(p->data);
  if (self->capture_) self->reason_.append(at, len);
  return 0;
}

int Http1ResponseFramer::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<Http1ResponseFramer*>(p->data);
  if (!self->capture_) return 0;
  if (self->in_value_ || self->headers_.empty()) {
    self->headers_.emplace_back();
    self->in_value_ = false;
  }
  self->headers_.back().first.append(at, len);
  return 0;
}

int Http1ResponseFramer::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<Http1ResponseFramer*>(p->data);
  if (!self->capture_) return 0;
  self->in_value_ = true;
  self->headers_.back().second.append(at, len);
  return 0;
}

int Http1ResponseFramer::OnHeadersComplete(llhttp_t* p) {
  auto* self = static_cast<Http1ResponseFramer*>(p->data);
  self->status_ = llhttp_get_status_code(p);
  // A response to HEAD has no body whatever its Content-Length says ("no body").
  bool no_body = self->head_request_ && self->status_ >= 200;
  if (!self->capture_) return no_body ? 1 : 0;
  self->version_minor_ = llhttp_get_http_minor(p);
  for (auto& kv : self->headers_) Lower(&kv.first);
  self->in_head_ = false;
  self->head_paused_ = true;
  // Pausing here skips the return value that says "no body": the flag it would set is set directly.
  if (no_body) p->flags |= F_SKIPBODY;
  return HPE_PAUSED;
}

int Http1ResponseFramer::OnMessageComplete(llhttp_t* p) {
  auto* self = static_cast<Http1ResponseFramer*>(p->data);
  int st = llhttp_get_status_code(p);
  if (st >= 100 && st < 200 && st != 101) return 0;  // interim: the final response follows
  self->complete_ = true;
  self->keep_alive_ = llhttp_should_keep_alive(p) != 0 && st != 101;
  return st == 101 ? 0 : HPE_PAUSED;
}

Http1ResponseFramer::Result Http1ResponseFramer::Feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (complete_) return Result::kComplete;
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);  // after a kHead
  head_paused_ = false;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    return complete_ ? Result::kComplete : Result::kNeedMore;
  }
  const char* pos = llhttp_get_error_pos(&parser_);
  *consumed = pos != nullptr && pos >= data && pos <= data + len ? static_cast<size_t>(pos - data) : len;
  if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && complete_) return Result::kComplete;
  if (err == HPE_PAUSED && head_paused_) return Result::kHead;
  return Result::kError;
}

Http1ResponseFramer::Result Http1ResponseFramer::Finish() {
  if (complete_) return Result::kComplete;
  if (!started_) return Result::kError;
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);  // EOF right after a captured head
  llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && complete_) {
    keep_alive_ = false;
    return Result::kComplete;
  }
  return Result::kError;
}

}  // namespace zm::proxy
