// What a client sends an HTTP/1.1 Service port, and what an upstream answers (agent/proxy/http1_codec.h), fed in
// pieces as the proxy reads them. Besides "no crash, no leak, no UB", it checks the proxy's promise: what it sends
// upstream for the requests it accepted (serialized head, body as-is or re-chunked) parses back to the same heads and
// bodies; and the response framer never claims more bytes than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/proxy/http1_codec.h"

namespace {

using zm::proxy::Http1RequestParser;
using zm::proxy::Http1ResponseFramer;
using Ev = Http1RequestParser::Event;

struct Request {
  zm::proxy::HttpRequestHead head;
  std::string body;
  bool ended = false;
};

// Parses |wire| in pieces of |step| bytes as Http1Conn does; stops at an error or an upgrade.
std::vector<Request> Parse(const std::string& wire, size_t step, std::string* upstream) {
  Http1RequestParser p;
  std::vector<Request> out;
  std::string buf;
  size_t off = 0;
  while (true) {
    size_t n = std::min(step, wire.size() - off);
    buf.append(wire, off, n);
    off += n;
    while (!buf.empty()) {
      size_t used = 0;
      Ev ev = p.Feed(buf.data(), buf.size(), &used);
      if (used > buf.size()) std::abort();
      buf.erase(0, used);
      if (ev == Ev::kError || ev == Ev::kHeadTooLarge) return out;
      if (p.head_ready()) {
        out.push_back({p.head(), "", false});
        if (upstream != nullptr) *upstream += zm::proxy::SerializeRequestHead(p.head());
      }
      if (!p.body().empty()) {
        if (out.empty()) std::abort();  // a body without a head
        out.back().body += p.body();
        if (upstream != nullptr) {
          if (out.back().head.chunked) {
            zm::proxy::AppendChunk(p.body(), upstream);
          } else {
            *upstream += p.body();
          }
        }
      }
      if (ev == Ev::kEnd || ev == Ev::kUpgrade) {
        if (out.empty()) std::abort();
        out.back().ended = true;
        if (upstream != nullptr && out.back().head.chunked) *upstream += zm::proxy::kLastChunk;
      }
      if (ev == Ev::kUpgrade) return out;
      if (ev == Ev::kNeedMore) break;
    }
    if (off >= wire.size()) return out;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t step = 1 + data[0] % 64;
  std::string wire(reinterpret_cast<const char*>(data + 1), size - 1);

  std::string upstream;
  std::vector<Request> got = Parse(wire, step, &upstream);
  // Only complete requests are compared: the last one may be cut off mid-body by the input's end.
  std::vector<Request> again = Parse(upstream, 4096, nullptr);
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].ended) break;
    if (i >= again.size()) std::abort();
    const auto& a = got[i].head;
    const auto& b = again[i].head;
    if (a.method != b.method || a.target != b.target || a.headers.size() != b.headers.size() ||
        a.upgrade != b.upgrade || got[i].body != again[i].body || !again[i].ended) {
      std::abort();
    }
    if (a.upgrade) break;
  }

  Http1ResponseFramer f;
  bool capture = data[0] & 0x40;  // ResponseHeaderModifier: each head captured, rewritten, serialized
  f.Start(data[0] & 0x80, capture);
  size_t off = 0;
  while (off < wire.size()) {
    size_t n = std::min(step, wire.size() - off);
    size_t used = 0;
    auto r = f.Feed(wire.data() + off, n, &used);
    while (r == Http1ResponseFramer::Result::kHead) {
      if (!capture || used > n) std::abort();
      f.headers().emplace_back("x-mesh", "1");
      std::string head = zm::proxy::SerializeResponseHead(f.version_minor(), f.status(), f.reason(), f.headers());
      Http1ResponseFramer check;  // what goes to the client parses as a response head with the same status
      check.Start(true, false);
      size_t check_used = 0;
      if (check.Feed(head.data(), head.size(), &check_used) == Http1ResponseFramer::Result::kError ||
          check.status() != f.status()) {
        std::abort();
      }
      off += used;
      n -= used;
      r = f.Feed(wire.data() + off, n, &used);
    }
    if (used > n) std::abort();
    off += used;
    if (r != Http1ResponseFramer::Result::kNeedMore) break;
  }
  if (off >= wire.size()) f.Finish();
  return 0;
}
