#include "agent/admin/readiness.h"

namespace zm::admin {

std::vector<std::string> Readiness::missing() const {
  std::vector<std::string> out;
  if (!uplink_attached) out.push_back("capture program not attached to the uplink");
  if (!listeners_in_sockmap) out.push_back("proxy listeners not in the SOCKMAP");
  if (!config_applied) out.push_back("no config applied");
  if (!links_synced) out.push_back("initial interface sync not finished");
  return out;
}

}  // namespace zm::admin
