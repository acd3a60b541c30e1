// Controller resources -> the agent's own state structures (agent/state: MeshSnapshot, InMemoryCertStore).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "agent/control/cert_manager.h"
#include "agent/control/config_state.h"
#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::agent::control {

// nullptr with *error when the state cannot be used (no MeshConfig, bad IP, bad trust domain): becomes a NACK.
std::shared_ptr<const MeshSnapshot> ToMeshSnapshot(const ConfigState& state, const std::string& node,
                                                   std::string* error);
// SPIFFE IDs of the enrolled workloads scheduled on `node`.
std::set<std::string> LocalIdentities(const ConfigState& state, const std::string& node);
bool ToIdentityMaterial(const IssuedIdentity& issued, IdentityMaterial* out, std::string* error);

}  // namespace zm::agent::control
