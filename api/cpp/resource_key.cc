#include "api/cpp/resource_key.h"

namespace zm::api {
namespace v1 = zeromesh::v1;

v1::ResourceKey KeyOf(const v1::Resource& r) {
  v1::ResourceKey k;
  auto set = [&k](v1::ResourceKind kind, const std::string& ns, const std::string& name) {
    k.set_kind(kind);
    k.set_namespace_(ns);
    k.set_name(name);
  };
  switch (r.kind_case()) {
    case v1::Resource::kWorkload:
      set(v1::WORKLOAD, r.workload().namespace_(), r.workload().name());
      break;
    case v1::Resource::kService:
      set(v1::SERVICE, r.service().namespace_(), r.service().name());
      break;
    case v1::Resource::kTrafficPermission:
      set(v1::TRAFFIC_PERMISSION, r.traffic_permission().namespace_(), r.traffic_permission().name());
      break;
    case v1::Resource::kMeshConfig:  // cluster-scoped
      set(v1::MESH_CONFIG, "", r.mesh_config().name());
      break;
    case v1::Resource::kTcpRoute:
      set(v1::TCP_ROUTE, r.tcp_route().namespace_(), r.tcp_route().name());
      break;
    case v1::Resource::kServicePolicy:
      set(v1::SERVICE_POLICY, r.service_policy().namespace_(), r.service_policy().name());
      break;
    case v1::Resource::kHttpRoute:
      set(v1::HTTP_ROUTE, r.http_route().namespace_(), r.http_route().name());
      break;
    case v1::Resource::kGrpcRoute:
      set(v1::GRPC_ROUTE, r.grpc_route().namespace_(), r.grpc_route().name());
      break;
    default:
      break;
  }
  return k;
}

}  // namespace zm::api
