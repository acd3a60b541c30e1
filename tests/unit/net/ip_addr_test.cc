#include "common/net/ip_addr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <unordered_set>

namespace zm::net {
namespace {

IpAddr Ip(const char* s) {
  auto a = IpAddr::Parse(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a.value_or(IpAddr{});
}

TEST(IpAddrTest, ParsesBothFamiliesAndFormatsCanonically) {
  EXPECT_TRUE(Ip("10.244.1.11").is_v4());
  EXPECT_EQ(Ip("10.244.1.11").v4(), inet_addr("10.244.1.11"));
  EXPECT_EQ(Ip("10.244.1.11").ToString(), "10.244.1.11");
  EXPECT_TRUE(Ip("fd00:10:244:1::b").is_v6());
  EXPECT_EQ(Ip("FD00:0010:0244:0001:0:0:0:B").ToString(), "fd00:10:244:1::b");
  EXPECT_EQ(Ip("fd00::1").size(), 16u);
  EXPECT_EQ(IpAddr{}.ToString(), "");
  EXPECT_TRUE(IpAddr{}.empty());
}

TEST(IpAddrTest, V4MappedIsTheIpv4Address) {
  EXPECT_EQ(Ip("::ffff:10.0.0.1"), Ip("10.0.0.1"));
  EXPECT_TRUE(Ip("::ffff:10.0.0.1").is_v4());
  EXPECT_FALSE(Ip("::10.0.0.1").is_v4());  // IPv4-compatible (deprecated) is not mapped
}

TEST(IpAddrTest, RejectsWhatIsNotABareAddress) {
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "[fd00::1]", "fd00::1%eth0", "fd00::1/64", "10.0.0.1:80",
                          "fd00:::1", "x", "10.0.0.1 ", "1111:2222:3333:4444:5555:6666:7777:8888:9999"}) {
    EXPECT_FALSE(IpAddr::Parse(bad).has_value()) << bad;
  }
}

TEST(IpAddrTest, FamiliesNeverCompareEqualAndOrderV4First) {
  IpAddr v4 = IpAddr::V4(0);
  IpAddr v6 = Ip("::");
  EXPECT_NE(v4, v6);
  EXPECT_LT(v4, v6);
  EXPECT_LT(Ip("10.0.0.1"), Ip("10.0.0.2"));
  std::unordered_set<IpAddr> set{Ip("10.0.0.1"), Ip("fd00::1"), Ip("10.0.0.1")};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.count(Ip("fd00::1")));
}

TEST(IpAddrTest, Loopback) {
  EXPECT_TRUE(Ip("127.0.0.5").IsLoopback());
  EXPECT_TRUE(Ip("::1").IsLoopback());
  EXPECT_FALSE(Ip("::2").IsLoopback());
  EXPECT_FALSE(Ip("10.0.0.1").IsLoopback());
}

TEST(CidrTest, ParsesAndMatchesBothFamilies) {
  auto v4 = Cidr::Parse("10.244.0.0/16");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->Contains(Ip("10.244.3.4")));
  EXPECT_FALSE(v4->Contains(Ip("10.245.0.1")));
  EXPECT_FALSE(v4->Contains(Ip("::ffff:10.245.0.1")));
  auto v6 = Cidr::Parse("fd00:10:244::/52");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->Contains(Ip("fd00:10:244:fff::1")));
  EXPECT_FALSE(v6->Contains(Ip("fd00:10:244:1000::1")));
  EXPECT_FALSE(v6->Contains(Ip("10.244.0.1")));  // never across families
  EXPECT_EQ(v6->ToString(), "fd00:10:244::/52");
  auto host = Cidr::Parse("fd00::7");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix_len, 128);
  EXPECT_TRUE(host->Contains(Ip("fd00::7")));
  EXPECT_FALSE(host->Contains(Ip("fd00::8")));
  auto all = Cidr::Parse("::/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(all->Contains(Ip("1.2.3.4")));
}

TEST(CidrTest, HostBitsClearedOrRefused) {
  auto c = Cidr::Parse("fd00::1/64");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ToString(), "fd00::/64");
  std::string error;
  EXPECT_FALSE(Cidr::Parse("10.1.2.3/8", &error, /*strict_host_bits=*/true));
  EXPECT_NE(error.find("host bits"), std::string::npos) << error;
}

TEST(CidrTest, SaysWhatIsWrong) {
  std::string error;
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/33", &error));
  EXPECT_NE(error.find("exceeds 32"), std::string::npos) << error;
  EXPECT_FALSE(Cidr::Parse("fd00::/129", &error));
  EXPECT_NE(error.find("exceeds 128"), std::string::npos) << error;
  for (const char* bad : {"fd00::/", "fd00::/x", "/8", "nope/8", "10.0.0.0/-1", "10.0.0.0/1000"}) {
    error.clear();
    EXPECT_FALSE(Cidr::Parse(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(SockAddrTest, AuthorityFormsOfBothFamilies) {
  auto v4 = SockAddr::Parse("10.0.0.1:8080");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->ip, Ip("10.0.0.1"));
  EXPECT_EQ(v4->port, 8080);
  EXPECT_EQ(v4->ToString(), "10.0.0.1:8080");
  auto v6 = SockAddr::Parse("[fd00::1]:15008");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->ip, Ip("fd00::1"));
  EXPECT_EQ(v6->port, 15008);
  EXPECT_EQ(v6->ToString(), "[fd00::1]:15008");
  for (const char* bad :
       {"fd00::1:80", "[10.0.0.1]:80", "[fd00::1]", "[fd00::1]80", "[fd00::1]:", "[fd00::1]:0", "[fd00::1]:65536",
        "10.0.0.1", "10.0.0.1:", "10.0.0.1:8o", ":80", "[]:80", "[fd00::1:80", "10.0.0.1:123456"}) {
    EXPECT_FALSE(SockAddr::Parse(bad).has_value()) << bad;
  }
}

TEST(SockAddrTest, RoundTripsThroughSockaddr) {
  for (const char* text : {"10.1.2.3:443", "[fd00:10:244:1::5]:15008"}) {
    auto a = SockAddr::Parse(text);
    ASSERT_TRUE(a) << text;
    sockaddr_storage ss;
    socklen_t len = a->ToSockaddr(&ss);
    ASSERT_GT(len, 0u);
    auto back = SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, *a);
  }
  sockaddr_storage ss;
  EXPECT_EQ(SockAddr{}.ToSockaddr(&ss), 0u);
}

TEST(SockAddrTest, DualStackSocketPeersBecomeIpv4) {
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(80);
  inet_pton(AF_INET6, "::ffff:10.9.8.7", &in6.sin6_addr);
  auto a = SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6));
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->ip.is_v4());
  EXPECT_EQ(a->ToString(), "10.9.8.7:80");
  sockaddr bogus{};
  bogus.sa_family = AF_UNIX;
  EXPECT_FALSE(SockAddr::FromSockaddr(&bogus, sizeof(bogus)));
  EXPECT_FALSE(SockAddr::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(sockaddr_in)));  // truncated
}

}  // namespace
}  // namespace zm::net
