#include "agent/control/state_adapter.h"

#include <algorithm>
#include <cmath>

#include "agent/control/address_list.h"
#include "agent/control/service_adapter.h"

#include "common/tls/pem.h"
#include "common/tls/spiffe.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;

std::shared_ptr<const MeshSnapshot> ToMeshSnapshot(const ConfigState& state, const std::string& node,
                                                   std::string* error) {
  const v1::MeshConfig* mesh = state.mesh();
  if (mesh == nullptr) {
    *error = "config has no MeshConfig";
    return nullptr;
  }
  std::string why;
  if (!tls::ValidTrustDomain(mesh->trust_domain(), &why)) {
    *error = "MeshConfig trust domain: " + why;
    return nullptr;
  }
  MeshMode def = mesh->default_mode() == v1::PERMISSIVE ? MeshMode::kPermissive : MeshMode::kStrict;
  std::vector<Workload> workloads;
  for (const auto& [key, r] : state.resources) {
    if (!r.has_workload()) continue;
    const auto& w = r.workload();
    Workload out;
    out.name = w.name();
    out.ns = w.namespace_();
    out.service_account = w.service_account();
    out.node = w.node();
    if (std::string why; !WorkloadIps(w, &out.ips, &why)) {
      *error = "workload " + w.namespace_() + "/" + w.name() + ": " + why;
      return nullptr;
    }
    out.enrolled = w.enrolled();
    for (uint32_t p : w.probe_ports()) {
      if (p < 1 || p > 65535) {
        *error = "workload " + w.namespace_() + "/" + w.name() + ": bad probe port " + std::to_string(p);
        return nullptr;
      }
      out.probe_ports.push_back(static_cast<uint16_t>(p));
    }
    if (auto it = w.labels().find("zeromesh.io/mesh"); it != w.labels().end()) out.mesh_label = it->second;
    out.mode = w.mode() == v1::MODE_UNSPECIFIED ? def
               : w.mode() == v1::PERMISSIVE     ? MeshMode::kPermissive
                                                : MeshMode::kStrict;
    workloads.push_back(std::move(out));
  }
  std::vector<Service> services;
  if (!ToServices(state, &services, error)) return nullptr;
  auto snap =
      std::make_shared<MeshSnapshot>(mesh->trust_domain(), node, def, std::move(workloads), std::move(services));
  snap->set_strict_udp_allowed(mesh->strict_udp_allowed());
  if (mesh->has_tracing()) {  // the controller checked 0..100; parts per million, clamped all the same
    double pct = std::clamp(mesh->tracing().sampling_percentage(), 0.0, 100.0);
    snap->set_tracing_sampling_ppm(static_cast<uint32_t>(std::lround(pct * 10000)));
  }
  for (const auto& cidr : mesh->exclude_cidrs()) {
    if (!net::Cidr::Parse(cidr)) {
      *error = "MeshConfig excludeCidrs: not a CIDR: \"" + cidr + "\"";
      return nullptr;
    }
  }
  snap->set_exclude_cidrs({mesh->exclude_cidrs().begin(), mesh->exclude_cidrs().end()});
  return snap;
}

std::set<std::string> LocalIdentities(const ConfigState& state, const std::string& node) {
  std::set<std::string> out;
  const v1::MeshConfig* mesh = state.mesh();
  if (mesh == nullptr) return out;
  for (const auto& [key, r] : state.resources) {
    if (!r.has_workload()) continue;
    const auto& w = r.workload();
    if (w.node() == node && w.enrolled()) {
      out.insert(tls::SpiffeId{mesh->trust_domain(), w.namespace_(), w.service_account()}.ToString());
    }
  }
  return out;
}

bool ToIdentityMaterial(const IssuedIdentity& issued, IdentityMaterial* out, std::string* error) {
  IdentityMaterial m;
  if (!tls::ParseSpiffeId(issued.spiffe_id, &m.id, error)) return false;
  if (!tls::ParsePemCerts(issued.cert_chain_pem, &m.creds.chain, error)) return false;
  if (!tls::ParsePemPrivateKey(issued.key_pem, &m.creds.key, error)) return false;
  *out = std::move(m);
  return true;
}

}  // namespace zm::agent::control
