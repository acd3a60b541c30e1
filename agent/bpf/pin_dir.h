// Pin directory helpers on bpffs: <pin_root>/<agent_id>/ holds the maps by name and links/<ifname>.
#pragma once

#include <string>
#include <string_view>

#include "agent/bpf/status.h"

namespace zm::agent::bpf {

bool ValidAgentId(std::string_view id);  // [A-Za-z0-9._-]{1,64}, not "." or ".."
// mkdir -p; every created or existing component under the bpffs mount must be a directory on bpffs.
Status EnsureBpffsDir(const std::string& path);
// Detaches and unpins every link under <dir>/links, unpins everything else in <dir>, removes both directories and
// then <dir>'s parent if it became empty. A missing dir is fine.
Status PurgePinDir(const std::string& dir);

}  // namespace zm::agent::bpf
