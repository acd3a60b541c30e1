// PercentEncode: the bytes |keep| accepts stay, every other byte (and '%' always) becomes %XX.
#include "common/percent_encode.h"

#include <gtest/gtest.h>

#include <string>

namespace zm {
namespace {

bool PrintableAscii(unsigned char c) {
  return c >= 0x20 && c <= 0x7e;
}
bool Everything(unsigned char) {
  return true;
}
bool Nothing(unsigned char) {
  return false;
}

TEST(PercentEncode, UrlUnreservedKeepsOnlyRfc3986Unreserved) {
  EXPECT_EQ(PercentEncode("AZaz09-._~", UrlUnreserved), "AZaz09-._~");
  // A Kubernetes continue token (base64 with '=', '/', '+') and a query separator must not survive as themselves.
  EXPECT_EQ(PercentEncode("eyJ2/a+b==&x=1 y", UrlUnreserved), "eyJ2%2Fa%2Bb%3D%3D%26x%3D1%20y");
  EXPECT_EQ(PercentEncode("caf\xc3\xa9", UrlUnreserved), "caf%C3%A9");  // UTF-8 bytes one by one, upper-case hex
  EXPECT_EQ(PercentEncode("", UrlUnreserved), "");
}

TEST(PercentEncode, PrintableAsciiKeepsSpacesAndPunctuation) {
  // gRPC's grpc-message: printable ASCII stays (space included), control bytes and non-ASCII do not.
  EXPECT_EQ(PercentEncode("denied: rpc/x (7)", PrintableAscii), "denied: rpc/x (7)");
  EXPECT_EQ(PercentEncode("a\r\nb\x7f\xff", PrintableAscii), "a%0D%0Ab%7F%FF");
  EXPECT_EQ(PercentEncode(std::string("a\0b", 3), PrintableAscii), "a%00b");  // NUL is a byte like any other
}

TEST(PercentEncode, PercentIsAlwaysEncoded) {
  // Whatever the caller keeps, a literal '%' must not read as the start of an escape.
  EXPECT_EQ(PercentEncode("100%", PrintableAscii), "100%25");
  EXPECT_EQ(PercentEncode("%41", Everything), "%2541");
  EXPECT_EQ(PercentEncode("%", UrlUnreserved), "%25");
}

TEST(PercentEncode, EveryByteRoundTrips) {
  // Each of the 256 bytes encodes to itself or to %XX of its own value.
  for (int b = 0; b < 256; ++b) {
    const std::string in(1, static_cast<char>(b));
    const std::string out = PercentEncode(in, Nothing);
    ASSERT_EQ(out.size(), 3u) << b;
    EXPECT_EQ(out[0], '%');
    EXPECT_EQ(std::stoi(out.substr(1), nullptr, 16), b);
    EXPECT_EQ(out.find_first_not_of("0123456789ABCDEF", 1), std::string::npos) << "upper-case hex: " << out;
    EXPECT_EQ(PercentEncode(in, Everything), b == '%' ? "%25" : in);
  }
}

}  // namespace
}  // namespace zm
