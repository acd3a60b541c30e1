// Reads the node's ready pod sandboxes from the container runtime through the Kubernetes CRI (containerd, CRI-O):
// namespace, name, labels and IP of each. The runtime knows a pod's namespace the moment its sandbox exists, before
// any of its containers starts and long before the kubelet reports the pod's IP to the API server, so the agent can
// decide at once whether a new pod is enrolled (agent/node/node_agent.cc, docs/design.md "New pods").
#pragma once

#include <grpcpp/channel.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/net/ip_addr.h"

namespace zm::agent::runtime {

struct Sandbox {
  std::string id;
  std::string name;
  std::string namespace_name;
  std::map<std::string, std::string> labels;  // the pod's labels (the kubelet copies them onto its sandbox)
  std::string ip;                             // IPv4 (the sandbox's primary or first additional IPv4); "" if none
  std::vector<net::IpAddr> ips;               // every address (primary, then additional_ips), either family
};

class CriClient {
 public:
  // socket: a unix socket path, e.g. /run/containerd/containerd.sock.
  explicit CriClient(const std::string& socket);

  // Every READY sandbox. Sandbox statuses (the IP) are fetched once per sandbox and cached. False with *error when
  // the runtime cannot be asked (not running, wrong socket, no CRI on it).
  bool ListReady(std::vector<Sandbox>* out, std::string* error);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::mutex mu_;
  std::map<std::string, Sandbox> by_id_;  // cache of statuses
};

}  // namespace zm::agent::runtime
