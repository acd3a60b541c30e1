// Status.Report (agents), Status.Get and Status.Resources (meshctl; any valid join token).
// On the operator port (Role::kOperator: loopback of the controller's pod, reached by `meshctl` through a
// pods/portforward the API server authorized) Get and Resources need no credential and ignore any bearer token, a
// standby refuses them with FAILED_PRECONDITION naming the lease holder, and Report is refused (agents only).
#pragma once

#include "controller/service/context.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::ctrl {

// What Get and Resources answer, for anyone else who shows the same (the console).
void DescribeMesh(const ServiceContext& ctx, zeromesh::v1::MeshStatus* out);
void DescribeResources(const ServiceContext& ctx, zeromesh::v1::ResourceSet* out);

class StatusService final : public zeromesh::v1::Status::Service {
 public:
  enum class Role { kAgents, kOperator };
  explicit StatusService(ServiceContext* ctx, Role role = Role::kAgents) : ctx_(ctx), role_(role) {}
  grpc::Status Report(grpc::ServerContext* context, const zeromesh::v1::AgentStatus* req,
                      zeromesh::v1::ReportAck* resp) override;
  grpc::Status Get(grpc::ServerContext* context, const zeromesh::v1::GetStatusRequest* req,
                   zeromesh::v1::MeshStatus* resp) override;
  grpc::Status Resources(grpc::ServerContext* context, const zeromesh::v1::GetResourcesRequest* req,
                         zeromesh::v1::ResourceSet* resp) override;

 private:
  grpc::Status Admit(const grpc::ServerContext& context) const;  // Get/Resources: who may read

  ServiceContext* ctx_;
  Role role_;
};

}  // namespace zm::ctrl
