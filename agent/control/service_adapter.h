// Controller Services, TCPRoutes and ServicePolicies -> the agent's Service list (agent/state/service.h).
#pragma once

#include <string>
#include <vector>

#include "agent/control/config_state.h"
#include "agent/state/service.h"

namespace zm::agent::control {

// False with *error (a NACK) when a Service has a bad VIP or endpoint IP. Routes and policies whose Services are
// absent are ignored: the controller validates references, and a delta may briefly race a removal.
bool ToServices(const ConfigState& state, std::vector<Service>* out, std::string* error);

}  // namespace zm::agent::control
