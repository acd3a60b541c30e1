// W3C trace context headers an HBONE peer sends: only well-formed values reach telemetry.
#include "agent/proxy/trace_context.h"

#include <gtest/gtest.h>

#include <string>

namespace zm::proxy {
namespace {

TEST(Traceparent, VersionZeroExactly) {
  EXPECT_TRUE(ValidTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(ValidTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  for (const char* bad : {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // forbidden version
                          "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "garbage"}) {
    EXPECT_FALSE(ValidTraceparent(bad)) << bad;
  }
}

TEST(Traceparent, FutureVersionsKeepTheLayout) {
  EXPECT_TRUE(ValidTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(ValidTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"));
  EXPECT_FALSE(ValidTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01more"));
}

TEST(Baggage, LinesJoinAndStayBounded) {
  std::string b;
  EXPECT_TRUE(AppendBaggage(&b, "userId=alice"));
  EXPECT_TRUE(AppendBaggage(&b, "isProduction=false"));
  EXPECT_EQ(b, "userId=alice,isProduction=false");
  EXPECT_FALSE(AppendBaggage(&b, "evil=\r\nx"));  // control characters never reach the log
  EXPECT_EQ(b, "userId=alice,isProduction=false");
  EXPECT_FALSE(AppendBaggage(&b, std::string(kMaxBaggageBytes, 'a')));
  EXPECT_EQ(b, "userId=alice,isProduction=false");
  std::string full(kMaxBaggageBytes - 2, 'x');
  EXPECT_TRUE(AppendBaggage(&full, "y"));
  EXPECT_EQ(full.size(), kMaxBaggageBytes);
  EXPECT_FALSE(AppendBaggage(&full, "z"));
}

}  // namespace
}  // namespace zm::proxy
