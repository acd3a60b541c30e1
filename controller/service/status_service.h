// Status.Report (agents) and Status.Get (meshctl; any valid join token).
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

 private:
  ServiceContext* ctx_;
};

}  // namespace zm::ctrl
