// Service endpoint resolution from selectors, shared by the full compile (snapshot.cc) and the incremental one
// (incremental_compile.cc) so both give the same bytes. Header-only: the fuzz targets compile snapshot.cc alone.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zeromesh/v1/resources.pb.h"

namespace zm::ctrl::endpoints {

// Workload by address (every address of a dual-stack workload).
using ByIp = std::unordered_map<std::string, const zeromesh::v1::Workload*>;
// Workloads by LabelKey of each label, as (address in ByIp, workload): a selector only looks at the workloads carrying
// its first label instead of every workload (1,000 services x 10,000 workloads would be 10M label checks per change).
using ByLabel =
    std::unordered_map<std::string, std::vector<std::pair<const std::string*, const zeromesh::v1::Workload*>>>;

inline std::string LabelKey(const std::string& ns, const std::string& k, const std::string& v) {
  return ns + "/" + k + "=" + v;
}

// The addresses a workload is an endpoint at: `ips` when set (dual stack), else `ip`.
inline std::vector<std::string> WorkloadIps(const zeromesh::v1::Workload& w) {
  if (w.ips().empty()) return {w.ip()};
  return {w.ips().begin(), w.ips().end()};
}

inline bool Matches(const google::protobuf::Map<std::string, std::string>& selector,
                    const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// Replaces `svc`'s endpoints by its explicit ones merged with the workloads its selector picks, each named after the
// workload at its address. `svc` must hold the Service as given (explicit endpoints only).
inline void Resolve(const ByIp& by_ip, const ByLabel& by_label, zeromesh::v1::Service* svc) {
  std::map<std::string, zeromesh::v1::Endpoint> eps;  // by IP: explicit and selected endpoints merge
  for (const auto& e : svc->endpoints()) eps[e.ip()] = e;
  if (!svc->selector().empty()) {
    // Selected addresses of the Service's own families only, as Kubernetes fills a single-stack Service's
    // EndpointSlices (a Service without a VIP takes both). Canonical text: IPv6 has a ':', IPv4 never.
    bool want[2] = {svc->vip().empty(), svc->vip().empty()};
    if (svc->vips().empty() && !svc->vip().empty()) want[svc->vip().find(':') != std::string::npos] = true;
    for (const auto& vip : svc->vips()) want[vip.find(':') != std::string::npos] = true;
    const auto& [k0, v0] = *svc->selector().begin();
    if (auto it = by_label.find(LabelKey(svc->namespace_(), k0, v0)); it != by_label.end()) {
      for (const auto& [ip, wl] : it->second) {
        if (want[ip->find(':') != std::string::npos] && Matches(svc->selector(), wl->labels())) {
          eps[*ip].set_ip(*ip);
        }
      }
    }
  }
  svc->clear_endpoints();
  for (auto& [ip, e] : eps) {
    if (auto it = by_ip.find(ip); it != by_ip.end()) {
      e.set_workload(it->second->namespace_() + "/" + it->second->name());
      e.set_node(it->second->node());
    }
    *svc->add_endpoints() = e;
  }
}

}  // namespace zm::ctrl::endpoints
