#include "agent/state/mesh_snapshot.h"

namespace zm::agent {

const char* MeshModeName(MeshMode m) {
  return m == MeshMode::kStrict ? "STRICT" : "PERMISSIVE";
}

MeshSnapshot::MeshSnapshot(std::string trust_domain, std::string node, MeshMode default_mode,
                           std::vector<Workload> workloads)
    : trust_domain_(std::move(trust_domain)), node_(std::move(node)), default_mode_(default_mode) {
  by_ip_.reserve(workloads.size());
  for (auto& w : workloads) {
    in_addr_t ip = w.ip;
    by_ip_.insert_or_assign(ip, std::move(w));
  }
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
