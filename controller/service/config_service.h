// Config.Stream: full snapshot first, then deltas; ACK/NACK tracking; resume from a version still in history.
#pragma once

#include "controller/config/push_cache.h"
#include "controller/service/context.h"
#include "zeromesh/v1/config.grpc.pb.h"

namespace zm::ctrl {

class ConfigService final : public zeromesh::v1::Config::Service {
 public:
  explicit ConfigService(ServiceContext* ctx) : ctx_(ctx), pushes_(ctx->push_part_bytes) {}
  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<zeromesh::v1::ConfigPush, zeromesh::v1::AgentMessage>* stream) override;

 private:
  ServiceContext* ctx_;
  PushCache pushes_;
};

}  // namespace zm::ctrl
