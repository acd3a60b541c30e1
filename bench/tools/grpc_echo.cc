// zm-grpc-echo: the L7 benchmark's gRPC server (bench/l7.py). A generic unary echo: any /pkg.Service/Method gets its
// request message back, so no proto or codegen is involved; the load generator (h2load) sends one length-prefixed
// message per call. The value of the request header x-zm-bench-route (set by the mesh's GRPCRoute) comes back as
// response metadata of the same name, which is how the benchmark proves which path the mesh took.
//   zm-grpc-echo IP:PORT
// The callback API runs the reactors on gRPC's own executor, whose threads follow the cores: no thread flag.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

namespace {

constexpr const char* kRouteHeader = "x-zm-bench-route";

// One call: read the request, answer it with itself and OK. A call that ends before its message is refused.
class Echo : public grpc::ServerGenericBidiReactor {
 public:
  explicit Echo(grpc::GenericCallbackServerContext* ctx) : ctx_(ctx) { StartRead(&buf_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
      return;
    }
    auto it = ctx_->client_metadata().find(kRouteHeader);
    if (it != ctx_->client_metadata().end()) {
      ctx_->AddInitialMetadata(kRouteHeader, std::string(it->second.data(), it->second.size()));
    }
    StartWriteAndFinish(&buf_, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  grpc::GenericCallbackServerContext* ctx_;
  grpc::ByteBuffer buf_;
};

class EchoService : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Echo(ctx);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: zm-grpc-echo IP:PORT\n");
    return 2;
  }
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(argv[1], grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "zm-grpc-echo: cannot listen on %s\n", argv[1]);
    return 1;
  }
  std::fprintf(stderr, "zm-grpc-echo: listening on %s\n", argv[1]);
  // Runs until killed (the benchmark ends its namespaces' processes); nothing to flush.
  server->Wait();
  return 0;
}
