#include "controller/manifest/namespaces.h"

namespace zm::manifest {
namespace v1 = zeromesh::v1;

std::string ParseModeLabel(const std::string& value, v1::Mode* mode) {
  if (value == "STRICT") {
    *mode = v1::STRICT;
  } else if (value == "PERMISSIVE") {
    *mode = v1::PERMISSIVE;
  } else {
    return std::string("label '") + kModeLabel + "' must be STRICT or PERMISSIVE, not '" + value + "'";
  }
  return "";
}

bool ResolveWorkload(bool inherit_enrolled, bool inherit_mode, const Namespace* ns, bool enrolled_default,
                     v1::Workload* w) {
  bool changed = false;
  if (inherit_enrolled) {
    bool enrolled = ns != nullptr && ns->enrolled ? *ns->enrolled : enrolled_default;
    changed = changed || w->enrolled() != enrolled;
    w->set_enrolled(enrolled);
  }
  if (inherit_mode) {
    v1::Mode mode = ns != nullptr ? ns->mode : v1::MODE_UNSPECIFIED;
    changed = changed || w->mode() != mode;
    w->set_mode(mode);
  }
  return changed;
}

std::map<std::string, const Namespace*> IndexNamespaces(const std::vector<Namespace>& namespaces) {
  std::map<std::string, const Namespace*> out;
  for (const auto& ns : namespaces) out[ns.name] = &ns;
  return out;
}

void ApplyNamespaces(Result* r) {
  auto index = IndexNamespaces(r->namespaces);
  for (auto& l : r->resources) {
    if (!l.resource.has_workload() || !(l.inherit_enrolled || l.inherit_mode)) continue;
    auto* w = l.resource.mutable_workload();
    auto it = index.find(w->namespace_());
    if (ResolveWorkload(l.inherit_enrolled, l.inherit_mode, it == index.end() ? nullptr : it->second, true, w)) {
      l.digest.reset();
    }
  }
}

}  // namespace zm::manifest
