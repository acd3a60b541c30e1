#include "tests/integration/bpf/topology.h"

namespace zm::agent::bpf::testing {

std::string Topology::Create(bool with_ext, bool with_v6) {
  node = Netns::Create(prefix + "-node");
  pod = Netns::Create(prefix + "-pod");
  if (!node || !pod) return "cannot create namespaces";
  const std::string n = "ip -n " + node->name() + " ";
  const std::string p = "ip -n " + pod->name() + " ";
  int rc = 0;
  // No DAD on the links made here: until a link-local address is out of DAD, the kernel sends no neighbour
  // solicitation for a packet with a foreign source (the proxy's transparent upstream sockets), and those stall.
  auto no_dad = [](const Netns& ns) {
    return Sh("nsenter --net=" + ns.Path() + " sysctl -q -w net.ipv6.conf.default.accept_dad=0");
  };
  if (with_v6) rc |= no_dad(*node) | no_dad(*pod);
  rc |= Sh(n + "link set lo up");
  rc |= Sh(p + "link set lo up");
  rc |= Sh(n + "link add " + kPodVeth + " type veth peer name eth0 netns " + pod->name());
  rc |= Sh(n + "addr add 10.244.1.1/32 dev " + kPodVeth);
  rc |= Sh(n + "link set " + kPodVeth + " up");
  rc |= Sh(n + "route add " + kPodIp + "/32 dev " + kPodVeth);
  rc |= Sh(p + "addr add " + kPodIp + "/24 dev eth0");
  rc |= Sh(p + "link set eth0 up");
  rc |= Sh(p + "route add default via 10.244.1.1 dev eth0");
  // sysctl inside the node netns only (nsenter switches the whole process; nothing runs if it fails).
  rc |= Sh("nsenter --net=" + node->Path() + " sysctl -q -w net.ipv4.ip_forward=1");
  if (with_ext) {
    ext = Netns::Create(prefix + "-ext");
    if (!ext) return "cannot create ext namespace";
    if (with_v6) rc |= no_dad(*ext);
    const std::string e = "ip -n " + ext->name() + " ";
    rc |= Sh(e + "link set lo up");
    rc |= Sh(n + "link add " + kUplink + " type veth peer name eth0 netns " + ext->name());
    rc |= Sh(n + "addr add 10.99.0.1/24 dev " + kUplink);
    rc |= Sh(n + "link set " + kUplink + " up");
    rc |= Sh(e + "addr add " + kExtIp + "/24 dev eth0");
    rc |= Sh(e + "link set eth0 up");
    rc |= Sh(e + "route add 10.244.0.0/16 via 10.99.0.1 dev eth0");
  }
  if (with_v6) {
    rc |= Sh(n + "addr add fd00:244:1::1/128 dev " + kPodVeth + " nodad");
    rc |= Sh(n + "-6 route add " + kPodIp6 + "/128 dev " + kPodVeth);
    rc |= Sh(p + "addr add " + kPodIp6 + "/64 dev eth0 nodad");
    rc |= Sh(p + "-6 route add default via fd00:244:1::1 dev eth0");
    rc |= Sh("nsenter --net=" + node->Path() + " sysctl -q -w net.ipv6.conf.all.forwarding=1");
    if (with_ext) {
      const std::string e = "ip -n " + ext->name() + " ";
      rc |= Sh(n + "addr add fd00:99::1/64 dev " + kUplink + " nodad");
      rc |= Sh(e + "addr add " + kExtIp6 + "/64 dev eth0 nodad");
      rc |= Sh(e + "-6 route add fd00:244::/32 via fd00:99::1 dev eth0");
    }
  }
  return rc == 0 ? std::string() : "network setup command failed (see stderr)";
}

}  // namespace zm::agent::bpf::testing
