#include "controller/service/identity_service.h"

#include "common/log.h"
#include "controller/ca/csr_check.h"

namespace zm::ctrl {

grpc::Status IdentityService::Sign(grpc::ServerContext* context, const zeromesh::v1::SignRequest* req,
                                   zeromesh::v1::SignResponse* resp) {
  auto count_denial = [&](CsrDenial reason) {
    if (ctx_->metrics) ctx_->metrics->CsrDenied(reason);
  };
  std::string node;
  if (auto st = ctx_->auth->Authenticate(*context, &node); !st.ok()) {
    log::Warn("sign: unauthenticated", {{"peer", context->peer()}, {"error", st.error_message()}});
    count_denial(CsrDenial::kUnauthenticated);
    return st;
  }
  auto deny = [&](CsrDenial reason, grpc::StatusCode code, const std::string& why) {
    log::Warn("sign: rejected", {{"node", node}, {"error", why}});
    count_denial(reason);
    return grpc::Status(code, why);
  };
  auto snap = ctx_->store->Current();
  if (!snap) return deny(CsrDenial::kNoConfig, grpc::StatusCode::UNAVAILABLE, "no valid mesh configuration loaded yet");

  auto check = ca::CheckCsr(req->csr_pem(), snap->mesh.trust_domain());
  if (!check.ok) {
    return check.denied ? deny(CsrDenial::kForeignIdentity, grpc::StatusCode::PERMISSION_DENIED, check.error)
                        : deny(CsrDenial::kInvalidCsr, grpc::StatusCode::INVALID_ARGUMENT, check.error);
  }
  uint32_t ttl = req->ttl_seconds() == 0 ? snap->mesh.cert_ttl_seconds() : req->ttl_seconds();
  if (ttl > ctx_->max_cert_ttl_seconds) {
    return deny(CsrDenial::kBadTtl, grpc::StatusCode::INVALID_ARGUMENT,
                "requested TTL " + std::to_string(ttl) + "s exceeds the maximum " +
                    std::to_string(ctx_->max_cert_ttl_seconds) + "s");
  }
  if (ttl < 60)
    return deny(CsrDenial::kBadTtl, grpc::StatusCode::INVALID_ARGUMENT, "requested TTL must be at least 60s");

  const std::string id = check.id.ToString();
  if (!snap->NodeRuns(node, check.id.ns, check.id.sa)) {
    bool anywhere = false;
    for (const auto& [n, ids] : snap->identities_by_node)
      anywhere = anywhere || ids.count(check.id.ns + "/" + check.id.sa);
    return deny(anywhere ? CsrDenial::kNodeNotAuthorized : CsrDenial::kUnknownIdentity,
                grpc::StatusCode::PERMISSION_DENIED,
                anywhere ? "no workload with identity " + id + " is scheduled on node '" + node + "'"
                         : "unknown workload identity " + id + ": no workload in the mesh uses service account " +
                               check.id.ns + "/" + check.id.sa);
  }
  ca::LeafSpec spec;
  spec.public_key = check.public_key.get();
  spec.uris = {id};
  spec.ttl_seconds = ttl;
  std::string err;
  auto authority = ctx_->ca->Current();  // one CA for the whole answer, even if it is rotated meanwhile
  auto issued = authority->Issue(spec, &err);
  if (!issued) {
    log::Error("sign: CA failure", {{"node", node}, {"id", id}, {"error", err}});
    count_denial(CsrDenial::kCaError);
    return {grpc::StatusCode::INTERNAL, "signing failed"};
  }
  resp->set_cert_chain_pem(issued->chain_pem);
  resp->set_trust_bundle_pem(authority->trust_bundle_pem());
  resp->set_ca_signer(authority->signer_id());
  if (ctx_->metrics) ctx_->metrics->CsrSigned();
  log::Info("sign: issued", {{"node", node}, {"id", id}, {"not_after", issued->not_after_unix}});
  return grpc::Status::OK;
}

}  // namespace zm::ctrl
