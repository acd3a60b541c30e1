// /readyz: the agent is ready when it can carry traffic the way the config says.
#pragma once

#include <string>
#include <vector>

namespace zm::admin {

struct Readiness {
  bool uplink_attached = false;       // capture program on the node uplink (inbound HBONE)
  bool listeners_in_sockmap = false;  // all three proxy listeners in the SOCKMAP
  bool config_applied = false;        // a config is applied to the BPF maps and the proxy
  bool links_synced = false;          // the initial interface dump was processed (every existing veth attached)

  bool ready() const { return uplink_attached && listeners_in_sockmap && config_applied && links_synced; }
  std::vector<std::string> missing() const;  // what keeps it from being ready, for the /readyz body
};

}  // namespace zm::admin
