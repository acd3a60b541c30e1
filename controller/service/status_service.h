// Status.Report (agents), Status.Get and Status.Resources (meshctl; any valid join token).
#pragma once

#include "controller/service/context.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::ctrl {

class StatusService final : public zeromesh::v1::Status::Service {
 public:
  explicit StatusService(ServiceContext* ctx) : ctx_(ctx) {}
  grpc::Status Report(grpc::ServerContext* context, const zeromesh::v1::AgentStatus* req,
                      zeromesh::v1::ReportAck* resp) override;
  grpc::Status Get(grpc::ServerContext* context, const zeromesh::v1::GetStatusRequest* req,
                   zeromesh::v1::MeshStatus* resp) override;
  grpc::Status Resources(grpc::ServerContext* context, const zeromesh::v1::GetResourcesRequest* req,
                         zeromesh::v1::ResourceSet* resp) override;

 private:
  ServiceContext* ctx_;
};

}  // namespace zm::ctrl
