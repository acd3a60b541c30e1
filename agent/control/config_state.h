// The resource set the controller says this agent holds, and how pushes (full / delta) change it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "zeromesh/v1/config.pb.h"

namespace zm::agent::control {

struct ConfigState {
  uint64_t version = 0;
  std::string epoch;
  std::string trust_bundle_pem;
  std::string ca_signer;  // the CA's current signer: certificates from another one are re-issued
  std::map<std::string, zeromesh::v1::Resource> resources;  // ResourceKeyString -> resource

  const zeromesh::v1::MeshConfig* mesh() const;  // nullptr if absent
};

std::string ResourceKeyString(const zeromesh::v1::ResourceKey& k);
std::string ResourceKeyString(const zeromesh::v1::Resource& r);

// Applies `push` on top of `held`. False (with *error) when a delta does not fit what is held (wrong epoch/base).
bool ApplyPush(const ConfigState& held, const zeromesh::v1::ConfigPush& push, ConfigState* out, std::string* error);

}  // namespace zm::agent::control
