#include "agent/bpf/host_routes.h"

#include <net/if.h>

#include <cstdlib>
#include <fstream>
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

std::map<uint32_t, uint32_t> HostRouteInterfaces() {
  std::ifstream f("/proc/net/route");
  std::stringstream buf;
  buf << f.rdbuf();
  return ParseHostRoutes(buf.str());
}

}  // namespace zm::agent::bpf
