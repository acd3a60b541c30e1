#include "agent/control/config_state.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;

std::string ResourceKeyString(const v1::ResourceKey& k) {
  return std::to_string(static_cast<int>(k.kind())) + "/" + k.namespace_() + "/" + k.name();
}

std::string ResourceKeyString(const v1::Resource& r) {
  v1::ResourceKey k;
  switch (r.kind_case()) {
    case v1::Resource::kWorkload:
      k.set_kind(v1::WORKLOAD);
      k.set_namespace_(r.workload().namespace_());
      k.set_name(r.workload().name());
      break;
    case v1::Resource::kService:
      k.set_kind(v1::SERVICE);
      k.set_namespace_(r.service().namespace_());
      k.set_name(r.service().name());
      break;
    case v1::Resource::kTrafficPermission:
      k.set_kind(v1::TRAFFIC_PERMISSION);
      k.set_namespace_(r.traffic_permission().namespace_());
      k.set_name(r.traffic_permission().name());
      break;
    case v1::Resource::kMeshConfig:
      k.set_kind(v1::MESH_CONFIG);
      k.set_name(r.mesh_config().name());
      break;
    case v1::Resource::kTcpRoute:
      k.set_kind(v1::TCP_ROUTE);
      k.set_namespace_(r.tcp_route().namespace_());
      k.set_name(r.tcp_route().name());
      break;
    case v1::Resource::kServicePolicy:
      k.set_kind(v1::SERVICE_POLICY);
      k.set_namespace_(r.service_policy().namespace_());
      k.set_name(r.service_policy().name());
      break;
    default:
      break;
  }
  return ResourceKeyString(k);
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
  *out = std::move(next);
  return true;
}

}  // namespace zm::agent::control
