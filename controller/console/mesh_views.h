// The console's read-only pages as JSON (docs/ui.md lists the shapes): workloads, namespaces, services with their
// routes and measured splits, and the live traffic graph. Pure functions of MeshInputs.
#pragma once

#include <nlohmann/json.hpp>

#include "controller/console/mesh_inputs.h"

namespace zm::ctrl::console {

nlohmann::json WorkloadsView(const MeshInputs& in);
nlohmann::json NamespacesView(const MeshInputs& in);
nlohmann::json ServicesView(const MeshInputs& in);
nlohmann::json TrafficView(const MeshInputs& in);

}  // namespace zm::ctrl::console
