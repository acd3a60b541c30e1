#include "tools/meshctl/client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <fstream>
#include <sstream>

namespace zm::meshctl {
namespace {

constexpr const char* kServerName = "mesh-controller.zeromesh";  // the DNS SAN of the controller's serving cert

}  // namespace

std::unique_ptr<Client> Client::Create(const Connection& conn, std::string* error) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = conn.ca_pem;
  if (ssl.pem_root_certs.empty()) {
    std::ifstream f(conn.ca_cert);
    std::stringstream pem;
    pem << f.rdbuf();
    if (!f || pem.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      *error = "--ca-cert " + conn.ca_cert + ": cannot read a PEM certificate";
      return nullptr;
    }
    ssl.pem_root_certs = pem.str();
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(kServerName);
  std::unique_ptr<Client> c(new Client(conn));
  c->stub_ = zeromesh::v1::Status::NewStub(grpc::CreateCustomChannel(conn.controller, grpc::SslCredentials(ssl), args));
  return c;
}

void Client::Prepare(grpc::ClientContext* ctx) const {
  if (!conn_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + conn_.token);
  ctx->set_deadline(std::chrono::system_clock::now() + conn_.timeout);
}

std::string Client::Explain(const grpc::Status& st) const {
  const std::string& where = conn_.description.empty() ? conn_.controller : conn_.description;
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      if (std::string why = conn_.transport_error ? conn_.transport_error() : ""; !why.empty()) {
        return "controller unreachable at " + where + ": " + why;
      }
      return "controller unreachable at " + where + ": " + st.error_message();
    case grpc::StatusCode::FAILED_PRECONDITION:  // the operator port of a standby replica
      return "the controller at " + where + " cannot answer: " + st.error_message() +
             " (the leader changed meanwhile: run meshctl again)";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "the controller rejected the token: " + st.error_message();
    default:
      return "controller request failed (" + std::to_string(st.error_code()) + "): " + st.error_message();
  }
}

bool Client::GetStatus(zeromesh::v1::MeshStatus* out, std::string* error) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto st = stub_->Get(&ctx, zeromesh::v1::GetStatusRequest(), out);
  if (!st.ok()) *error = Explain(st);
  return st.ok();
}

bool Client::GetResources(zeromesh::v1::ResourceSet* out, std::string* error) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto st = stub_->Resources(&ctx, zeromesh::v1::GetResourcesRequest(), out);
  if (!st.ok()) *error = Explain(st);
  return st.ok();
}

}  // namespace zm::meshctl
