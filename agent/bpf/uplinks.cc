#include "agent/bpf/uplinks.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace zm::agent::bpf {

std::vector<Ipv4Route> ParseIpv4Routes(std::string_view text) {
  std::vector<Ipv4Route> out;
  std::istringstream in{std::string(text)};
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses as the kernel stores them (%08X of the
    // network-order word), so the parsed numbers are already network order.
    std::istringstream f(line);
    std::string iface, dest, gw, flags, refcnt, use, metric, mask;
    if (!(f >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
    if (dest.size() != 8 || mask.size() != 8) continue;
    char* end1 = nullptr;
    char* end2 = nullptr;
    unsigned long d = std::strtoul(dest.c_str(), &end1, 16);
    unsigned long m = std::strtoul(mask.c_str(), &end2, 16);
    if (*end1 != '\0' || *end2 != '\0') continue;
    out.push_back({iface, static_cast<uint32_t>(d), static_cast<uint32_t>(m)});
  }
  return out;
}

std::set<std::string> FindUplinks(const std::vector<Ipv4Route>& routes, const std::vector<uint32_t>& remote_pod_ips) {
  std::set<std::string> out;
  std::vector<const Ipv4Route*> by_length;  // longest prefix first
  for (const auto& r : routes) {
    if (r.iface == "lo") continue;
    if (r.mask_be == 0) out.insert(r.iface);  // the default route
    by_length.push_back(&r);
  }
  std::stable_sort(by_length.begin(), by_length.end(),
                   [](const Ipv4Route* a, const Ipv4Route* b) { return ntohl(a->mask_be) > ntohl(b->mask_be); });
  for (uint32_t ip : remote_pod_ips) {
    for (const Ipv4Route* r : by_length) {
      if ((ip & r->mask_be) != r->dst_be) continue;
      if (r->mask_be != 0) out.insert(r->iface);  // the default route is in already
      break;
    }
  }
  return out;
}

std::string ReadProcNetRoute() {
  std::ifstream f("/proc/net/route");
  std::stringstream buf;
  buf << f.rdbuf();
  return buf.str();
}

std::set<std::string> FindUplinks(const std::vector<uint32_t>& remote_pod_ips) {
  return FindUplinks(ParseIpv4Routes(ReadProcNetRoute()), remote_pod_ips);
}

std::set<std::string> NetworkInterfaces(const std::vector<Ipv4Route>& routes) {
  std::set<std::string> out;
  for (const auto& r : routes) {
    if (r.mask_be != 0xffffffffu && r.iface != "lo") out.insert(r.iface);
  }
  return out;
}

}  // namespace zm::agent::bpf
