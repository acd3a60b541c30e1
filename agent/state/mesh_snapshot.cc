#include "agent/state/mesh_snapshot.h"

namespace zm::agent {

const char* MeshModeName(MeshMode m) {
  return m == MeshMode::kStrict ? "STRICT" : "PERMISSIVE";
}

MeshSnapshot::MeshSnapshot(std::string trust_domain, std::string node, MeshMode default_mode,
                           std::vector<Workload> workloads, std::vector<Service> services)
    : trust_domain_(std::move(trust_domain)),
      node_(std::move(node)),
      default_mode_(default_mode),
      services_(std::move(services)) {
  by_ip_.reserve(workloads.size());
  for (auto& w : workloads) {
    in_addr_t ip = w.ip;
    by_ip_.insert_or_assign(ip, std::move(w));
  }
  for (size_t i = 0; i < services_.size(); ++i) {
    if (services_[i].vip != 0) service_by_vip_.emplace(services_[i].vip, i);
    service_by_key_.emplace(services_[i].Key(), i);
    for (const auto& p : services_[i].ports) {
      if (p.protocol == PortProtocol::kTcp) continue;
      for (const auto& e : services_[i].endpoints)
        http_service_by_endpoint_.emplace(static_cast<uint64_t>(e.ip) << 16 | p.target_port,
                                          EndpointService{i, p.protocol});
    }
  }
}

const Service* MeshSnapshot::FindServiceOfEndpoint(in_addr_t ip, uint16_t target_port, PortProtocol* protocol) const {
  auto it = http_service_by_endpoint_.find(static_cast<uint64_t>(ip) << 16 | target_port);
  if (it == http_service_by_endpoint_.end()) return nullptr;
  *protocol = it->second.protocol;
  return &services_[it->second.service];
}

const Service* MeshSnapshot::FindService(in_addr_t vip) const {
  auto it = service_by_vip_.find(vip);
  return it == service_by_vip_.end() ? nullptr : &services_[it->second];
}

const Service* MeshSnapshot::FindService(const std::string& ns, const std::string& name) const {
  auto it = service_by_key_.find(ns + "/" + name);
  return it == service_by_key_.end() ? nullptr : &services_[it->second];
}

const Workload* MeshSnapshot::Find(in_addr_t ip) const {
  auto it = by_ip_.find(ip);
  return it == by_ip_.end() ? nullptr : &it->second;
}

std::shared_ptr<const MeshSnapshot> SnapshotHolder::Get() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_;
}

void SnapshotHolder::Set(std::shared_ptr<const MeshSnapshot> snap) {
  {
    std::lock_guard<std::mutex> l(mu_);
    current_ = std::move(snap);
  }
  std::lock_guard<std::mutex> l(subs_mu_);
  for (auto& [id, cb] : subs_) cb();
}

int SnapshotHolder::Subscribe(std::function<void()> cb) {
  std::lock_guard<std::mutex> l(subs_mu_);
  int id = next_id_++;
  subs_[id] = std::move(cb);
  return id;
}

void SnapshotHolder::Unsubscribe(int id) {
  std::lock_guard<std::mutex> l(subs_mu_);
  subs_.erase(id);
}

}  // namespace zm::agent
