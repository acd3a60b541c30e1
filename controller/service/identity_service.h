// Identity.Sign: CSR checks + NodeAuthorizer (the caller's node must run a workload with that identity).
#pragma once

#include "controller/service/context.h"
#include "zeromesh/v1/identity.grpc.pb.h"

namespace zm::ctrl {

class IdentityService final : public zeromesh::v1::Identity::Service {
 public:
  explicit IdentityService(ServiceContext* ctx) : ctx_(ctx) {}
  grpc::Status Sign(grpc::ServerContext* context, const zeromesh::v1::SignRequest* req,
                    zeromesh::v1::SignResponse* resp) override;

 private:
  ServiceContext* ctx_;
};

}  // namespace zm::ctrl
