#include "agent/runtime/cri_client.h"

#include <arpa/inet.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <set>

#include "cri/runtime_v1.grpc.pb.h"

namespace zm::agent::runtime {
namespace {

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace

CriClient::CriClient(const std::string& socket)
    : channel_(grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials())) {}

bool CriClient::ListReady(std::vector<Sandbox>* out, std::string* error) {
  auto stub = ::runtime::v1::RuntimeService::NewStub(channel_);
  ::runtime::v1::ListPodSandboxRequest req;
  req.mutable_filter()->mutable_state()->set_state(::runtime::v1::SANDBOX_READY);
  ::runtime::v1::ListPodSandboxResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  if (auto st = stub->ListPodSandbox(&ctx, req, &resp); !st.ok()) {
    *error = "CRI ListPodSandbox: " + st.error_message();
    return false;
  }
  std::lock_guard lock(mu_);
  std::set<std::string> live;
  out->clear();
  for (const auto& item : resp.items()) {
    live.insert(item.id());
    auto it = by_id_.find(item.id());
    if (it == by_id_.end()) {
      ::runtime::v1::PodSandboxStatusRequest sreq;
      sreq.set_pod_sandbox_id(item.id());
      ::runtime::v1::PodSandboxStatusResponse sresp;
      grpc::ClientContext sctx;
      SetDeadline(&sctx);
      if (auto st = stub->PodSandboxStatus(&sctx, sreq, &sresp); !st.ok()) continue;  // gone meanwhile
      Sandbox s;
      s.id = item.id();
      s.name = item.metadata().name();
      s.namespace_name = item.metadata().namespace_();
      for (const auto& [k, v] : item.labels()) s.labels[k] = v;
      const auto& net = sresp.status().network();
      if (IsIpv4(net.ip())) {
        s.ip = net.ip();
      } else {
        for (const auto& extra : net.additional_ips()) {
          if (IsIpv4(extra.ip())) {
            s.ip = extra.ip();
            break;
          }
        }
      }
      it = by_id_.emplace(item.id(), std::move(s)).first;
    }
    out->push_back(it->second);
  }
  std::erase_if(by_id_, [&](const auto& kv) { return !live.count(kv.first); });
  return true;
}

}  // namespace zm::agent::runtime
