// /debug/config_dump of the controller: the configuration it streams (resources + version), the manifest errors of
// the last load and what it knows about each agent's stream.
#pragma once

#include <nlohmann/json.hpp>

#include "controller/agent_registry.h"
#include "controller/config/store.h"

namespace zm::ctrl {

nlohmann::json ControllerConfigDump(const ConfigStore& store, const AgentRegistry& agents);
// A protobuf message as JSON (camelCase field names, as in the manifests); {"error": ...} if it cannot be printed.
nlohmann::json ProtoJson(const google::protobuf::Message& msg);

}  // namespace zm::ctrl
