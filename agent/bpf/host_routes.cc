#include "agent/bpf/host_routes.h"

#include <net/if.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace zm::agent::bpf {

std::map<uint32_t, uint32_t> ParseHostRoutes(std::string_view text) {
  std::map<uint32_t, uint32_t> out;
  std::istringstream in{std::string(text)};
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses as the kernel stores them (%08X of the
    // network-order word), so the parsed number is already the in_addr_t.
    std::istringstream f(line);
    std::string iface, dest, gw, flags, refcnt, use, metric, mask;
    if (!(f >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
    if (mask != "FFFFFFFF" || dest.size() != 8) continue;
    char* end = nullptr;
    unsigned long ip = std::strtoul(dest.c_str(), &end, 16);
    if (*end != '\0') continue;
    if (unsigned idx = if_nametoindex(iface.c_str()); idx != 0) out[static_cast<uint32_t>(ip)] = idx;
  }
  return out;
}

std::map<net::IpAddr, uint32_t> ParseHostRoutes6(std::string_view text) {
  constexpr unsigned long kRtfLocal = 0x80000000, kRtfCache = 0x01000000, kRtfAnycast = 0x00100000;
  std::map<net::IpAddr, uint32_t> out;
  std::set<net::IpAddr> local;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    // dest dest_len src src_len next_hop metric refcnt use flags iface; addresses as 32 hex digits, network order.
    std::istringstream f(line);
    std::string dest, len, src, src_len, hop, metric, refcnt, use, flags, iface;
    if (!(f >> dest >> len >> src >> src_len >> hop >> metric >> refcnt >> use >> flags >> iface)) continue;
    if (len != "80" || dest.size() != 32) continue;
    char* end = nullptr;
    const unsigned long fl = std::strtoul(flags.c_str(), &end, 16);
    if (*end != '\0' || (fl & (kRtfCache | kRtfAnycast))) continue;
    in6_addr a{};
    bool ok = true;
    for (size_t i = 0; i < 16 && ok; ++i) {
      const std::string byte = dest.substr(2 * i, 2);
      a.s6_addr[i] = static_cast<uint8_t>(std::strtoul(byte.c_str(), &end, 16));
      ok = *end == '\0' && isxdigit(static_cast<unsigned char>(byte[0])) &&
           isxdigit(static_cast<unsigned char>(byte[1]));
    }
    if (!ok) continue;
    if (fl & kRtfLocal) {
      local.insert(net::IpAddr::V6(a));
    } else if (unsigned idx = if_nametoindex(iface.c_str()); idx != 0 && iface != "lo") {
      out[net::IpAddr::V6(a)] = idx;
    }
  }
  // An address of the node itself (its /128 gets a prefix route beside the local one) leads to no pod.
  for (const auto& ip : local) out.erase(ip);
  return out;
}

namespace {

std::string ReadProcFile(const char* path) {
  std::ifstream f(path);
  std::stringstream buf;
  buf << f.rdbuf();
  return buf.str();
}

}  // namespace

std::map<net::IpAddr, uint32_t> HostRouteInterfaces() {
  std::map<net::IpAddr, uint32_t> out = ParseHostRoutes6(ReadProcFile("/proc/net/ipv6_route"));
  for (const auto& [ip, ifindex] : ParseHostRoutes(ReadProcFile("/proc/net/route"))) {
    out.emplace(net::IpAddr::V4(ip), ifindex);
  }
  return out;
}

}  // namespace zm::agent::bpf
