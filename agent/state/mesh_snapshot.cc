#include "agent/state/mesh_snapshot.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

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
  // Every address of a dual-stack pod finds the same workload. A later workload claiming an address takes it over; one
  // left with no address of its own is dropped (as one map entry per IP always did).
  std::unordered_map<net::IpAddr, size_t> owner;
  owner.reserve(workloads.size());
  for (size_t i = 0; i < workloads.size(); ++i) {
    for (const auto& ip : workloads[i].ips) owner.insert_or_assign(ip, i);
  }
  std::vector<size_t> kept_at(workloads.size(), SIZE_MAX);
  for (size_t i = 0; i < workloads.size(); ++i) {
    for (const auto& ip : workloads[i].ips) {
      if (owner.at(ip) == i && kept_at[i] == SIZE_MAX) kept_at[i] = workloads_.size();
    }
    if (kept_at[i] != SIZE_MAX) workloads_.push_back(std::move(workloads[i]));
  }
  by_ip_.reserve(owner.size());
  for (const auto& [ip, i] : owner) by_ip_.emplace(ip, kept_at[i]);
  for (size_t i = 0; i < services_.size(); ++i) {
    for (const auto& vip : services_[i].vips) service_by_vip_.emplace(vip, i);
    service_by_key_.emplace(services_[i].Key(), i);
  }
  // By namespace/name, not snapshot order: which Service names a port two of them declare never depends on arrival.
  std::vector<uint32_t> order(services_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [this](uint32_t a, uint32_t b) {
    return std::tie(services_[a].ns, services_[a].name) < std::tie(services_[b].ns, services_[b].name);
  });
  for (uint32_t i : order) {
    for (const auto& p : services_[i].ports) {
      for (const auto& e : services_[i].endpoints) {
        EndpointEntry& entry = by_endpoint_port_[net::SockAddr{e.ip, p.target_port}];
        entry.declared |= static_cast<uint8_t>(1u << static_cast<unsigned>(p.protocol));
        if (p.protocol != PortProtocol::kTcp && entry.service == UINT32_MAX) {
          entry.service = i;
          entry.protocol = p.protocol;
        }
      }
    }
  }
}

EndpointPort MeshSnapshot::FindEndpointPort(const net::IpAddr& ip, uint16_t target_port) const {
  auto it = by_endpoint_port_.find(net::SockAddr{ip, target_port});
  if (it == by_endpoint_port_.end()) return {};
  const EndpointEntry& e = it->second;
  return {e.service == UINT32_MAX ? nullptr : &services_[e.service], e.protocol, e.declared};
}

const Service* MeshSnapshot::FindServiceOfEndpoint(const net::IpAddr& ip, uint16_t target_port,
                                                   PortProtocol* protocol) const {
  EndpointPort port = FindEndpointPort(ip, target_port);
  if (port.http_service != nullptr) *protocol = port.http_protocol;
  return port.http_service;
}

const Service* MeshSnapshot::FindService(const net::IpAddr& vip) const {
  auto it = service_by_vip_.find(vip);
  return it == service_by_vip_.end() ? nullptr : &services_[it->second];
}

const Service* MeshSnapshot::FindService(const std::string& ns, const std::string& name) const {
  auto it = service_by_key_.find(ns + "/" + name);
  return it == service_by_key_.end() ? nullptr : &services_[it->second];
}

const Workload* MeshSnapshot::Find(const net::IpAddr& ip) const {
  auto it = by_ip_.find(ip);
  return it == by_ip_.end() ? nullptr : &workloads_[it->second];
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
