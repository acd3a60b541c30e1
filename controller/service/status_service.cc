#include "controller/service/status_service.h"

namespace zm::ctrl {

grpc::Status StatusService::Admit(const grpc::ServerContext& context) const {
  if (role_ == Role::kAgents) {
    std::string node;
    return ctx_->auth->Authenticate(context, &node);
  }
  // The operator port: the API server already authenticated and authorized the port-forward that reached it.
  if (std::string why = ctx_->standby ? ctx_->standby() : ""; !why.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this controller replica is a " + why);
  }
  return grpc::Status::OK;
}

grpc::Status StatusService::Report(grpc::ServerContext* context, const zeromesh::v1::AgentStatus* req,
                                   zeromesh::v1::ReportAck*) {
  if (role_ == Role::kOperator) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "agents report on the agents' port, not the operator port");
  }
  std::string node;
  if (auto st = ctx_->auth->Authenticate(*context, &node); !st.ok()) return st;
  ctx_->agents->Reported(node, *req);
  return grpc::Status::OK;
}

void DescribeMesh(const ServiceContext& ctx, zeromesh::v1::MeshStatus* resp) {
  auto* info = resp->mutable_controller();
  info->set_version(kControllerVersion);
  info->set_epoch(ctx.store->epoch());
  auto authority = ctx.ca->Current();
  info->set_ca_not_after_unix(authority->not_after_unix());
  info->set_ca_signer(authority->signer_id());
  auto credential = [&](const char* kind, const std::string& name, int64_t not_after) {
    auto* c = info->add_credentials();
    c->set_kind(kind);
    c->set_name(name);
    c->set_not_after_unix(not_after);
  };
  credential("ca", authority->signer().subject, authority->signer().not_after_unix);
  for (const auto& r : authority->roots()) credential("trust-root", r.subject, r.not_after_unix);
  if (ctx.serving_cert_not_after) credential("serving-cert", kServerName, ctx.serving_cert_not_after());
  if (const JoinTokenFile* tokens = ctx.auth->join_tokens()) {
    for (const auto& t : tokens->Describe()) credential("join-token", t.node, t.expires_unix);
  }
  if (ctx.security_problems) {
    for (auto& p : ctx.security_problems()) info->add_security_problems(std::move(p));
  }
  info->set_manifests_dir(ctx.manifests_dir);
  info->set_started_unix(ctx.started_unix);
  if (auto snap = ctx.store->Current()) {
    info->set_config_version(snap->version);
    info->set_trust_domain(snap->mesh.trust_domain());
    info->set_last_good_config_unix(snap->created_unix);
  }
  for (auto& a : ctx.agents->List()) *resp->add_agents() = std::move(a);
  for (const auto& e : ctx.store->errors()) {
    auto* me = resp->add_manifest_errors();
    me->set_file(e.file);
    me->set_line(static_cast<uint32_t>(e.line));
    me->set_reason(e.reason);
  }
}

void DescribeResources(const ServiceContext& ctx, zeromesh::v1::ResourceSet* resp) {
  resp->set_epoch(ctx.store->epoch());
  auto snap = ctx.store->Current();
  if (!snap) return;  // version 0: no valid configuration yet
  resp->set_version(snap->version);
  for (const auto& [key, r] : snap->resources) *resp->add_resources() = *r;
}

grpc::Status StatusService::Get(grpc::ServerContext* context, const zeromesh::v1::GetStatusRequest*,
                                zeromesh::v1::MeshStatus* resp) {
  if (auto st = Admit(*context); !st.ok()) return st;
  DescribeMesh(*ctx_, resp);
  return grpc::Status::OK;
}

grpc::Status StatusService::Resources(grpc::ServerContext* context, const zeromesh::v1::GetResourcesRequest*,
                                      zeromesh::v1::ResourceSet* resp) {
  if (auto st = Admit(*context); !st.ok()) return st;
  DescribeResources(*ctx_, resp);
  return grpc::Status::OK;
}

}  // namespace zm::ctrl
