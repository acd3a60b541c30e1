#include "agent/control/config_state.h"

#include "api/cpp/resource_key.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;

std::string ResourceKeyString(const v1::ResourceKey& k) {
  return std::to_string(static_cast<int>(k.kind())) + "/" + k.namespace_() + "/" + k.name();
}

std::string ResourceKeyString(const v1::Resource& r) {
  return ResourceKeyString(api::KeyOf(r));
}

const v1::MeshConfig* ConfigState::mesh() const {
  for (const auto& [k, r] : resources) {
    if (r.has_mesh_config()) return &r.mesh_config();
  }
  return nullptr;
}

bool ApplyPush(const ConfigState& held, const v1::ConfigPush& push, ConfigState* out, std::string* error) {
  ConfigState next;
  if (!push.full()) {
    if (push.epoch() != held.epoch || push.base_version() != held.version) {
      *error = "delta for base " + push.epoch() + "/" + std::to_string(push.base_version()) + " but holding " +
               held.epoch + "/" + std::to_string(held.version);
      return false;
    }
    next.resources = held.resources;
  }
  for (const auto& k : push.removed()) next.resources.erase(ResourceKeyString(k));
  for (const auto& r : push.upserted()) {
    if (r.kind_case() == v1::Resource::KIND_NOT_SET) {
      *error = "push contains a resource of unknown kind";
      return false;
    }
    next.resources[ResourceKeyString(r)] = r;
  }
  next.version = push.version();
  next.epoch = push.epoch();
  next.trust_bundle_pem = push.trust_bundle_pem().empty() ? held.trust_bundle_pem : push.trust_bundle_pem();
  next.ca_signer = push.ca_signer().empty() ? held.ca_signer : push.ca_signer();
  *out = std::move(next);
  return true;
}

}  // namespace zm::agent::control
