#include "controller/console/mesh_inputs.h"

namespace zm::ctrl::console {

namespace v1 = zeromesh::v1;

MeshDefaults DefaultsOf(const v1::ResourceSet& rs) {
  MeshDefaults d;
  for (const auto& r : rs.resources()) {
    if (!r.has_mesh_config()) continue;
    const auto& m = r.mesh_config();
    if (!m.trust_domain().empty()) d.trust_domain = m.trust_domain();
    if (m.default_mode() != v1::MODE_UNSPECIFIED) d.default_mode = m.default_mode();
    if (m.default_policy() != v1::ACTION_UNSPECIFIED) d.default_policy = m.default_policy();
  }
  return d;
}

std::string WorkloadKey(const v1::Workload& w) {
  return w.namespace_() + "/" + w.name();
}

std::string IdentityOf(const v1::Workload& w, const std::string& trust_domain) {
  return "spiffe://" + trust_domain + "/ns/" + w.namespace_() + "/sa/" + w.service_account();
}

v1::Mode ModeOf(const v1::Workload& w, const MeshDefaults& d) {
  return w.mode() != v1::MODE_UNSPECIFIED ? w.mode() : d.default_mode;
}

const char* ModeName(v1::Mode m) {
  return m == v1::PERMISSIVE ? "PERMISSIVE" : "STRICT";
}

}  // namespace zm::ctrl::console
