#include "agent/metrics/otlp_grpc_sender.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/tls/pem.h"
#include "otlp/trace.grpc.pb.h"

namespace zm::metrics {
namespace {

// What identifies one version of the CA file: a ConfigMap update swaps a symlink, so the inode changes too.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

// The sender's state, touched by the exporter's thread only.
struct Channel {
  std::string endpoint;
  OtlpTlsOptions tls;
  std::chrono::milliseconds timeout;
  std::unique_ptr<otlp::TraceService::Stub> stub;
  FileStamp ca_stamp;

  // A stub for the current CA file (made again when the file changed); false with *error when there is none.
  bool Ready(std::string* error) {
    if (tls.insecure) {
      if (!stub) stub = otlp::TraceService::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
      return true;
    }
    grpc::SslCredentialsOptions ssl;
    if (!tls.ca_file.empty()) {
      struct stat st {};
      if (stat(tls.ca_file.c_str(), &st) != 0) {
        *error = "OTLP CA file " + tls.ca_file + ": " + std::strerror(errno);
        return false;
      }
      FileStamp now{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
      if (stub && now == ca_stamp) return true;
      std::string why;
      tls::CertList certs;
      if (!tls::ReadFile(tls.ca_file, &ssl.pem_root_certs, &why) ||
          !tls::ParsePemCerts(ssl.pem_root_certs, &certs, &why)) {
        stub.reset();  // a bundle that turned bad is not trusted any longer
        *error = "OTLP CA file " + tls.ca_file + ": " + why;
        return false;
      }
      ca_stamp = now;
    } else if (stub) {
      return true;
    }
    grpc::ChannelArguments args;
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
    stub = otlp::TraceService::NewStub(grpc::CreateCustomChannel(endpoint, grpc::SslCredentials(ssl), args));
    return true;
  }
};

}  // namespace

bool ValidOtlpTls(const OtlpTlsOptions& tls, std::string* error) {
  if (tls.insecure && (!tls.ca_file.empty() || !tls.server_name.empty())) {
    *error = "a plaintext (insecure) OTLP receiver takes no CA file or server name";
    return false;
  }
  return true;
}

SpanExporter::Sender OtlpGrpcSender(const std::string& endpoint, const OtlpTlsOptions& tls,
                                    std::chrono::milliseconds timeout) {
  auto ch = std::make_shared<Channel>();
  ch->endpoint = endpoint;
  ch->tls = tls;
  ch->timeout = timeout;
  return [ch](const otlp::ExportTraceServiceRequest& req, std::string* error) {
    if (!ch->Ready(error)) return false;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + ch->timeout);
    otlp::ExportTraceServiceResponse resp;
    grpc::Status st = ch->stub->Export(&ctx, req, &resp);
    if (!st.ok()) {
      *error = "OTLP export: " + st.error_message() + " (gRPC code " + std::to_string(st.error_code()) + ")";
      return false;
    }
    if (resp.has_partial_success() && resp.partial_success().rejected_spans() > 0) {
      *error = "OTLP export: " + std::to_string(resp.partial_success().rejected_spans()) +
               " spans rejected: " + resp.partial_success().error_message();
      return false;
    }
    return true;
  };
}

}  // namespace zm::metrics
