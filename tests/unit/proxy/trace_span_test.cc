// The proxies' span decisions: parent-based sampling, new traces at the mesh's ratio, and the traceparent sent on.
#include "agent/proxy/trace_span.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "agent/proxy/http_trace.h"
#include "agent/proxy/trace_context.h"

namespace zm::proxy {
namespace {

constexpr const char* kIncoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(ChildSpan, KeepsTheIncomingTraceAndItsDecision) {
  SpanIdSource ids(1);
  SpanContext s = ChildSpan(kIncoming, /*ppm=*/0, ids);  // sampled upstream: the ratio does not matter
  EXPECT_EQ(s.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(s.parent_id, "00f067aa0ba902b7");
  EXPECT_TRUE(s.sampled());
  EXPECT_EQ(s.span_id.size(), 16u);
  EXPECT_NE(s.span_id, s.parent_id);

  SpanContext n = ChildSpan("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 1000000, ids);
  EXPECT_FALSE(n.sampled()) << "an upstream 'not sampled' wins over a 100 % ratio";
  EXPECT_EQ(n.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(ChildSpan, StartsATraceWhenAbsentOrInvalid) {
  SpanIdSource ids(2);
  for (const char* in : {"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                         "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}) {
    SpanContext s = ChildSpan(in, 1000000, ids);
    EXPECT_TRUE(s.parent_id.empty()) << in;
    EXPECT_TRUE(s.sampled()) << in;
    EXPECT_EQ(s.trace_id.size(), 32u);
    EXPECT_NE(s.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_TRUE(ValidTraceparent(ToTraceparent(s))) << ToTraceparent(s);
  }
  EXPECT_FALSE(ChildSpan("", 0, ids).sampled());
}

TEST(ChildSpan, SamplesNewTracesAtTheRatio) {
  SpanIdSource ids(3);
  int sampled = 0;
  for (int i = 0; i < 100000; ++i) sampled += ChildSpan("", SamplingPpm(10), ids).sampled() ? 1 : 0;
  EXPECT_NEAR(sampled, 10000, 600);  // 10 % of 100,000, well within 6 sigma
}

TEST(ChildSpan, IdsAreDistinct) {
  SpanIdSource ids;
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    SpanContext s = ChildSpan("", 1000000, ids);
    EXPECT_TRUE(seen.insert(s.trace_id).second);
    EXPECT_TRUE(seen.insert(s.span_id).second);
  }
}

TEST(SamplingPpm, Bounds) {
  EXPECT_EQ(SamplingPpm(0), 0u);
  EXPECT_EQ(SamplingPpm(-5), 0u);
  EXPECT_EQ(SamplingPpm(1), 10000u);
  EXPECT_EQ(SamplingPpm(0.0001), 1u);
  EXPECT_EQ(SamplingPpm(100), 1000000u);
  EXPECT_EQ(SamplingPpm(250), 1000000u);
}

TEST(Traceparent, NamesThisSpanAsTheParent) {
  SpanContext s{"4bf92f3577b34da6a3ce929d0e0e4736", "b7ad6b7169203331", "00f067aa0ba902b7", 1};
  EXPECT_EQ(ToTraceparent(s), "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01");
  s.flags = 0;
  EXPECT_EQ(ToTraceparent(s), "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00");
}

TEST(TraceHttpRequest, ReplacesEveryTraceparentWithItsOwn) {
  SpanIdSource ids(4);
  HttpRequestHead head;
  head.method = "GET";
  head.target = "/a?b";
  head.headers = {{"host", "web:8080"},
                  {"traceparent", kIncoming},
                  {"tracestate", "vendor=x"},
                  {"traceparent", "00-11111111111111111111111111111111-2222222222222222-01"}};
  RequestRecord rec;
  TraceHttpRequest(&head, 0, ids, &rec);
  int count = 0;
  for (const auto& [k, v] : head.headers) {
    if (k != "traceparent") continue;
    ++count;
    EXPECT_EQ(v, "00-4bf92f3577b34da6a3ce929d0e0e4736-" + rec.span.span_id + "-01");
  }
  EXPECT_EQ(count, 1);
  EXPECT_EQ(rec.span.parent_id, "00f067aa0ba902b7");  // the first one counts
  EXPECT_EQ(rec.tracestate, "vendor=x");
  EXPECT_EQ(rec.authority, "web:8080");
  EXPECT_NE(head.Header("tracestate"), nullptr);  // passed on unchanged
}

}  // namespace
}  // namespace zm::proxy
