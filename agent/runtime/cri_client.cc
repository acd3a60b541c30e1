#include "agent/runtime/cri_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "cri/runtime_v1.grpc.pb.h"

namespace zm::agent::runtime {
namespace {

// Every parseable address of the sandbox, the primary first, each once.
std::vector<net::IpAddr> SandboxIps(const ::runtime::v1::PodSandboxNetworkStatus& status) {
  std::vector<net::IpAddr> out;
  auto add = [&out](const std::string& text) {
    auto ip = net::IpAddr::Parse(text);
    if (ip && std::find(out.begin(), out.end(), *ip) == out.end()) out.push_back(*ip);
  };
  add(status.ip());
  for (const auto& extra : status.additional_ips()) add(extra.ip());
  return out;
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
      s.ips = SandboxIps(sresp.status().network());
      for (const auto& ip : s.ips) {
        if (ip.is_v4()) {
          s.ip = ip.ToString();
          break;
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
