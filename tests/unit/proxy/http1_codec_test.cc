// HTTP/1.1 framing of the L7 path: requests parsed one at a time in any split, bodies (Content-Length and chunked,
// re-chunked upstream), upgrades, malformed and oversized heads; the response framer's ends (Content-Length, chunked,
// close-delimited, HEAD, 1xx, 101); the request filters.
#include <gtest/gtest.h>

#include <algorithm>

#include "agent/proxy/http1_codec.h"
#include "agent/proxy/http_filters.h"

namespace zm::proxy {
namespace {

using Ev = Http1RequestParser::Event;

struct Parsed {
  std::vector<HttpRequestHead> heads;
  std::vector<std::string> bodies;
  Ev last = Ev::kNeedMore;
  std::string rest;  // bytes after an upgrade
};

// Feeds |wire| in pieces of |step| bytes, as the connection does (unconsumed bytes are fed again).
Parsed ParseAll(const std::string& wire, size_t step, HttpLimits limits = {}) {
  Http1RequestParser p(limits);
  Parsed out;
  std::string buf;
  size_t off = 0;
  while (true) {
    if (off < wire.size()) {
      size_t n = std::min(step, wire.size() - off);
      buf.append(wire, off, n);
      off += n;
    }
    while (!buf.empty()) {
      size_t used = 0;
      Ev ev = p.Feed(buf.data(), buf.size(), &used);
      buf.erase(0, used);
      if (p.head_ready()) {
        out.heads.push_back(p.head());
        out.bodies.emplace_back();
      }
      if (!p.body().empty()) out.bodies.back() += p.body();
      out.last = ev;
      if (ev == Ev::kError || ev == Ev::kHeadTooLarge) return out;
      if (ev == Ev::kUpgrade) {
        out.rest = buf + wire.substr(off);
        return out;
      }
      if (ev == Ev::kNeedMore) break;
    }
    if (off >= wire.size()) return out;
  }
}

TEST(Http1Request, KeepAliveRequestsInAnySplit) {
  std::string wire =
      "GET /a?x=1 HTTP/1.1\r\nHost: web\r\nX-Canary: 1\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{7}, wire.size()}) {
    Parsed p = ParseAll(wire, step);
    ASSERT_EQ(p.heads.size(), 3u) << "step " << step;
    EXPECT_EQ(p.heads[0].method, "GET");
    EXPECT_EQ(p.heads[0].Path(), "/a");
    EXPECT_EQ(p.heads[0].Query(), "x=1");
    ASSERT_NE(p.heads[0].Header("x-canary"), nullptr);  // names lower case
    EXPECT_EQ(*p.heads[0].Header("x-canary"), "1");
    EXPECT_EQ(p.bodies[1], "hello");
    EXPECT_FALSE(p.heads[1].chunked);
    EXPECT_TRUE(p.heads[2].chunked);
    EXPECT_EQ(p.bodies[2], "abcde");  // decoded
    EXPECT_TRUE(p.heads[2].keep_alive);
    EXPECT_EQ(p.last, Ev::kEnd);
  }
}

TEST(Http1Request, UpgradeAndConnectLeaveTheRestAsTunnelBytes) {
  Parsed ws = ParseAll("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nRAWBYTES", 5);
  ASSERT_EQ(ws.heads.size(), 1u);
  EXPECT_TRUE(ws.heads[0].upgrade);
  EXPECT_EQ(ws.last, Ev::kUpgrade);
  EXPECT_EQ(ws.rest, "RAWBYTES");
  Parsed c = ParseAll("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x01\x02", 100);
  ASSERT_EQ(c.heads.size(), 1u);
  EXPECT_TRUE(c.heads[0].upgrade);
  EXPECT_EQ(c.last, Ev::kUpgrade);
  EXPECT_EQ(c.rest, "\x01\x02");
}

TEST(Http1Request, MalformedAndSmugglingAttemptsAreErrors) {
  EXPECT_EQ(ParseAll("GARBAGE\r\n\r\n", 100).last, Ev::kError);
  EXPECT_EQ(ParseAll("CONNECT \n\n\n\n\n1\nb:", 100).last, Ev::kError);  // no version: not forwarded as 1.x
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 100).last, Ev::kError);
  EXPECT_EQ(ParseAll("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 100).last,
            Ev::kError);
  EXPECT_EQ(ParseAll("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 100).last, Ev::kError);
}

TEST(Http1Request, ObsoleteLineFoldingIsRefusedInAnySplit) {
  // Forwarded as one line, "Connection: Upgrade" + a folded continuation would no longer be an upgrade upstream,
  // while the proxy would treat what follows as tunnel bytes (found by fuzz_http_framing).
  std::string folded = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n pgrade: x\r\nUpgrade: websocket\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{2}, size_t{17}, folded.size()}) {
    EXPECT_EQ(ParseAll(folded, step).last, Ev::kError) << "step " << step;
  }
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nX-A: 1\r\n\tmore\r\n\r\n", 3).last, Ev::kError);
  Http1RequestParser p;
  size_t used = 0;
  EXPECT_EQ(p.Feed(folded.data(), folded.size(), &used), Ev::kError);
  EXPECT_NE(std::string(p.error()).find("obsolete line folding"), std::string::npos) << p.error();
  // Spaces inside and around values and empty values, split anywhere, are not folding.
  std::string spaced = "GET / HTTP/1.1\r\nX-A:  a b  \r\nX-E: \r\nX-B:\tc\r\n\r\n";
  for (size_t step = 1; step <= spaced.size(); ++step) {
    Parsed ok = ParseAll(spaced, step);
    ASSERT_EQ(ok.last, Ev::kEnd) << "step " << step;
    EXPECT_EQ(*ok.heads[0].Header("x-b"), "c");
  }
}

TEST(Http1Request, TrailersNeverJoinTheHeadInAnySplit) {
  // A chunked request with a trailer section (one field starting with a space), then a second request. Read in one
  // piece, the head used to be serialized with the trailer fields appended, the spaced one folding into
  // "transfer-encoding: chunked" upstream (found by fuzz_http_framing).
  std::string wire =
      "PUT / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n tR   x: $\r\n"
      "Content-Length: 7\r\n\r\nGET /b HTTP/1.1\r\nHost: web\r\n\r\n";
  for (size_t step = 1; step <= wire.size(); ++step) {
    Parsed p = ParseAll(wire, step);
    ASSERT_EQ(p.heads.size(), 2u) << "step " << step;
    ASSERT_EQ(p.heads[0].headers.size(), 2u) << "step " << step;
    EXPECT_EQ(p.heads[0].headers[1].first, "transfer-encoding");
    EXPECT_EQ(p.heads[0].headers[1].second, "chunked");
    EXPECT_FALSE(p.heads[0].Header("content-length")) << "step " << step;
    EXPECT_EQ(p.bodies[0], "abc");
    EXPECT_EQ(p.heads[1].target, "/b");
    EXPECT_EQ(p.heads[1].headers.size(), 1u);
    // What goes upstream (head, body re-chunked, an empty trailer section) parses back to the same two requests.
    std::string upstream = SerializeRequestHead(p.heads[0]);
    AppendChunk(p.bodies[0], &upstream);
    upstream += kLastChunk;
    upstream += SerializeRequestHead(p.heads[1]);
    Parsed again = ParseAll(upstream, upstream.size());
    ASSERT_EQ(again.heads.size(), 2u) << "step " << step;
    EXPECT_EQ(again.bodies[0], "abc");
    EXPECT_EQ(again.heads[1].target, "/b");
  }
}

TEST(Http1Request, OversizedHeadIs431) {
  HttpLimits small;
  small.max_head_bytes = 256;
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", 64, small).last, Ev::kHeadTooLarge);
  small.max_head_bytes = 64 * 1024;
  small.max_headers = 3;
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 64, small).last, Ev::kHeadTooLarge);
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 64, small).last, Ev::kEnd);
}

TEST(Http1Request, SerializedHeadParsesBackTheSame) {
  Parsed p = ParseAll("GET /x?y HTTP/1.1\r\nHost: web\r\nAccept: */*\r\n\r\n", 100);
  ASSERT_EQ(p.heads.size(), 1u);
  std::string wire = SerializeRequestHead(p.heads[0]);
  EXPECT_EQ(wire, "GET /x?y HTTP/1.1\r\nhost: web\r\naccept: */*\r\n\r\n");
  std::string chunked;
  AppendChunk("hello world!!!!!!", &chunked);
  AppendChunk("", &chunked);
  EXPECT_EQ(chunked, "11\r\nhello world!!!!!!\r\n");
}

// Feeds a response in one-byte pieces; returns how many bytes the framer said belong to it.
size_t FrameResponse(Http1ResponseFramer& f, const std::string& wire, Http1ResponseFramer::Result* r) {
  size_t total = 0;
  *r = Http1ResponseFramer::Result::kNeedMore;
  for (size_t i = 0; i < wire.size(); ++i) {
    size_t used = 0;
    *r = f.Feed(wire.data() + i, 1, &used);
    total += used;
    if (*r != Http1ResponseFramer::Result::kNeedMore) break;
  }
  return total;
}

TEST(Http1Response, EndsAtContentLengthChunkedAndForHead) {
  Http1ResponseFramer f;
  Http1ResponseFramer::Result r;
  std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  f.Start(false);
  EXPECT_EQ(FrameResponse(f, a + "NEXT", &r), a.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
  EXPECT_TRUE(f.keep_alive());
  std::string b = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
  f.Start(false);
  EXPECT_EQ(FrameResponse(f, b + "X", &r), b.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  f.Start(true);
  EXPECT_EQ(FrameResponse(f, head, &r), head.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
  std::string nc = "HTTP/1.1 204 No Content\r\n\r\n";
  f.Start(false);
  EXPECT_EQ(FrameResponse(f, nc, &r), nc.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
}

TEST(Http1Response, InterimResponsesAreNotTheEndButSwitchingProtocolsIs) {
  Http1ResponseFramer f;
  Http1ResponseFramer::Result r;
  std::string c = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  f.Start(false);
  EXPECT_EQ(FrameResponse(f, c, &r), c.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
  EXPECT_EQ(f.status(), 201);
  std::string up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  f.Start(false);
  EXPECT_EQ(FrameResponse(f, up + "frames", &r), up.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
  EXPECT_EQ(f.status(), 101);
  EXPECT_FALSE(f.keep_alive());
}

TEST(Http1Response, CloseDelimitedEndsAtEofAndCutResponsesAreErrors) {
  Http1ResponseFramer f;
  Http1ResponseFramer::Result r;
  f.Start(false);
  std::string cd = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof";
  EXPECT_EQ(FrameResponse(f, cd, &r), cd.size());
  EXPECT_EQ(r, Http1ResponseFramer::Result::kNeedMore);
  EXPECT_EQ(f.Finish(), Http1ResponseFramer::Result::kComplete);
  EXPECT_FALSE(f.keep_alive());
  f.Start(false);
  FrameResponse(f, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &r);
  EXPECT_EQ(f.Finish(), Http1ResponseFramer::Result::kError);
  f.Start(false);
  EXPECT_EQ(f.Finish(), Http1ResponseFramer::Result::kError);  // nothing at all
  f.Start(false);
  FrameResponse(f, "NOT HTTP\r\n\r\n", &r);
  EXPECT_EQ(r, Http1ResponseFramer::Result::kError);
}

// Capture mode in pieces of |step|: what goes to the client when every head gets "x-mesh: 1" and loses "server".
std::string RewriteResponse(const std::string& wire, size_t step, bool head_request, Http1ResponseFramer::Result* r) {
  Http1ResponseFramer f;
  f.Start(head_request, /*capture_head=*/true);
  std::string out;
  *r = Http1ResponseFramer::Result::kNeedMore;
  for (size_t off = 0; off < wire.size() && *r != Http1ResponseFramer::Result::kComplete;) {
    size_t n = std::min(step, wire.size() - off);
    const char* data = wire.data() + off;
    size_t used = 0;
    *r = f.Feed(data, n, &used);
    while (*r == Http1ResponseFramer::Result::kHead) {
      f.headers().erase(
          std::remove_if(f.headers().begin(), f.headers().end(), [](const auto& kv) { return kv.first == "server"; }),
          f.headers().end());
      f.headers().emplace_back("x-mesh", "1");
      out += SerializeResponseHead(f.version_minor(), f.status(), f.reason(), f.headers());
      data += used;
      n -= used;
      off += used;
      *r = f.Feed(data, n, &used);
    }
    if (*r == Http1ResponseFramer::Result::kError) return out;
    if (!(*r == Http1ResponseFramer::Result::kNeedMore && f.in_head())) out.append(data, used);
    off += used;
  }
  return out;
}

TEST(Http1Response, CapturedHeadsAreRewrittenAndBodiesPassUntouched) {
  Http1ResponseFramer::Result r;
  std::string wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\n\r\nabc";
  for (size_t step : {size_t{1}, size_t{5}, wire.size()}) {
    EXPECT_EQ(RewriteResponse(wire + "EXTRA", step, false, &r),
              "HTTP/1.1 100 Continue\r\nx-mesh: 1\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-mesh: 1\r\n\r\nabc")
        << step;
    EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete) << step;
  }
  EXPECT_EQ(RewriteResponse("HTTP/1.1 204 No Content\r\n\r\n", 100, false, &r),
            "HTTP/1.1 204 No Content\r\nx-mesh: 1\r\n\r\n");
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);  // no byte after the head needed to end it
  EXPECT_EQ(RewriteResponse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 100, true, &r),
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nx-mesh: 1\r\n\r\n");
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);  // HEAD: no body
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
  EXPECT_EQ(RewriteResponse(chunked, 3, false, &r),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-mesh: 1\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
  EXPECT_EQ(r, Http1ResponseFramer::Result::kComplete);
}

HttpRequestHead Head(std::string target, std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequestHead h;
  h.method = "GET";
  h.target = std::move(target);
  h.headers = std::move(headers);
  return h;
}

TEST(HttpFilters, HeaderModifierSetsAddsRemoves) {
  agent::HttpRouteRule rule;
  agent::HttpHeaderModifier m;
  m.set = {{"X-Env", "canary"}};
  m.add = {{"x-extra", "1"}};
  m.remove = {"X-Drop"};
  rule.request_headers.push_back(m);
  HttpRequestHead h = Head("/", {{"host", "web"}, {"x-env", "prod"}, {"x-drop", "y"}, {"x-extra", "0"}});
  ApplyRequestFilters(rule, nullptr, &h);
  EXPECT_EQ(SerializeRequestHead(h),
            "GET / HTTP/1.1\r\nhost: web\r\nx-extra: 0\r\nx-env: canary\r\nx-extra: 1\r\n\r\n");
}

TEST(HttpFilters, UrlRewriteReplacesPrefixFullPathAndHost) {
  agent::HttpRouteMatch match;
  match.has_path = true;
  match.path.type = agent::HttpMatchType::kPrefix;
  match.path.value = "/shop";
  agent::HttpRouteRule rule;
  rule.has_rewrite = true;
  rule.rewrite.path_type = agent::HttpUrlRewrite::Path::kReplacePrefix;
  rule.rewrite.path = "/store/v2";
  rule.rewrite.hostname = "store.internal";
  HttpRequestHead h = Head("/shop/cart?id=3", {{"host", "web"}});
  ApplyRequestFilters(rule, &match, &h);
  EXPECT_EQ(h.target, "/store/v2/cart?id=3");
  EXPECT_EQ(*h.Header("host"), "store.internal");
  HttpRequestHead exact = Head("/shop", {});
  ApplyRequestFilters(rule, &match, &exact);
  EXPECT_EQ(exact.target, "/store/v2");
  rule.rewrite.path = "/";
  HttpRequestHead root = Head("/shop/cart", {});
  ApplyRequestFilters(rule, &match, &root);
  EXPECT_EQ(root.target, "/cart");
  rule.rewrite.path_type = agent::HttpUrlRewrite::Path::kReplaceFull;
  rule.rewrite.path = "/fixed";
  HttpRequestHead full = Head("/shop/a/b?q", {});
  ApplyRequestFilters(rule, &match, &full);
  EXPECT_EQ(full.target, "/fixed?q");
}

}  // namespace
}  // namespace zm::proxy
