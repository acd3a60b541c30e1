// Uplinks from the routing table: the interface each remote pod's route takes (any name, a bond, a tunnel device),
// the default route's, never a pod's /32 route nor lo.
#include "agent/bpf/uplinks.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace zm::agent::bpf {
namespace {

uint32_t Ip(const char* s) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, s, &a), 1) << s;
  return a.s_addr;
}

// /proc/net/route as the kernel writes it (little-endian host: the network-order word printed with %08X).
constexpr char kOverlayNode[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "ens5\t0000630A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"       // 10.99.0.0/24 (underlay)
    "flannel.1\t0000F50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  // 10.245.0.0/24 (overlay subnet)
    "flannel.1\t0002F40A\t0200F50A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  // 10.244.2.0/24 via 10.245.0.2
    "zmv1p1\t0B01F40A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n"     // 10.244.1.11/32 (a local pod)
    "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";

TEST(Uplinks, TheTunnelDeviceThatCarriesOtherNodesPods) {
  auto routes = ParseIpv4Routes(kOverlayNode);
  ASSERT_EQ(routes.size(), 5u);
  EXPECT_EQ(routes[2].iface, "flannel.1");
  EXPECT_EQ(routes[2].dst_be, Ip("10.244.2.0"));
  EXPECT_EQ(routes[2].mask_be, Ip("255.255.255.0"));
  EXPECT_EQ(FindUplinks(routes, {Ip("10.244.2.11"), Ip("10.244.2.12")}), (std::set<std::string>{"flannel.1"}));
  // A local pod is not remote; nothing known: no uplink (no default route here).
  EXPECT_TRUE(FindUplinks(routes, {}).empty());
  // A remote pod with no route of its own is not an uplink's business.
  EXPECT_TRUE(FindUplinks(routes, {Ip("172.16.0.1")}).empty());
}

TEST(Uplinks, LongestPrefixWinsAndTheDefaultRouteCounts) {
  const char text[] =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "bond0\t00000000\t0100630A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"   // default via 10.99.0.1
      "enp3s0\t0000F40A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  // 10.244.0.0/16
      "enp4s0\t0003F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  // 10.244.3.0/24
      "lo\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n";     // never lo, even as a default
  auto routes = ParseIpv4Routes(text);
  EXPECT_EQ(FindUplinks(routes, {Ip("10.244.3.5")}), (std::set<std::string>{"bond0", "enp4s0"}));
  EXPECT_EQ(FindUplinks(routes, {Ip("10.244.7.5")}), (std::set<std::string>{"bond0", "enp3s0"}));
  EXPECT_EQ(FindUplinks(routes, {}), (std::set<std::string>{"bond0"}));
}

TEST(Uplinks, MalformedLinesAreSkipped) {
  auto routes = ParseIpv4Routes("header\nshort line\neth0\tZZZZZZZZ\t0\t1\t0\t0\t0\t00FFFFFF\n");
  EXPECT_TRUE(routes.empty());
}

}  // namespace
}  // namespace zm::agent::bpf
