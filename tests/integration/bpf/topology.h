// The namespaces of one test: a node netns with the BPF program, a pod behind a veth (pod side eth0, node side
// zmv1p1) and, optionally, an "external" host behind the node's uplink (node side up0, ext side eth0).
//   pod 10.244.1.11/24 --- zmv1p1 (10.244.1.1/32) [node, ip_forward=1] up0 10.99.0.1/24 --- ext 10.99.0.2/24
// With IPv6 (dual stack) the same links also carry (no DAD: usable at once, IPv6 forwarding on in the node):
//   pod fd00:244:1::11/64 --- zmv1p1 (fd00:244:1::1/128) [node] up0 fd00:99::1/64 --- ext fd00:99::2/64
// Follows the addressing of docs/design.md; everything lives in namespaces created here.
#pragma once

#include <memory>
#include <string>

#include "tests/integration/bpf/netns_env.h"

namespace zm::agent::bpf::testing {

inline constexpr char kPodIp[] = "10.244.1.11";
inline constexpr char kExtIp[] = "10.99.0.2";
inline constexpr char kPodIp6[] = "fd00:244:1::11";
inline constexpr char kExtIp6[] = "fd00:99::2";
inline constexpr char kPodVeth[] = "zmv1p1";
inline constexpr char kUplink[] = "up0";

struct Topology {
  std::string prefix = RandomPrefix();
  std::unique_ptr<Netns> node, pod, ext;

  // Returns an empty string on success, else what failed.
  std::string Create(bool with_ext, bool with_v6 = false);
  // Runs `args` as `ip -n <node> args`.
  int NodeIp(const std::string& args) const { return Sh("ip -n " + node->name() + " " + args); }
};

}  // namespace zm::agent::bpf::testing
