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

Inherited ResolvedSettings(bool inherit_enrolled, bool inherit_mode, const Namespace* ns, bool enrolled_default,
                           const v1::Workload& w) {
  Inherited out{w.enrolled(), w.mode()};
  if (inherit_enrolled) out.enrolled = ns != nullptr && ns->enrolled ? *ns->enrolled : enrolled_default;
  if (inherit_mode) out.mode = ns != nullptr ? ns->mode : v1::MODE_UNSPECIFIED;
  return out;
}

void SetInherited(const Inherited& s, v1::Workload* w) {
  w->set_enrolled(s.enrolled);
  w->set_mode(s.mode);
}

bool ResolveWorkload(bool inherit_enrolled, bool inherit_mode, const Namespace* ns, bool enrolled_default,
                     v1::Workload* w) {
  Inherited want = ResolvedSettings(inherit_enrolled, inherit_mode, ns, enrolled_default, *w);
  if (want == Inherited{w->enrolled(), w->mode()}) return false;
  SetInherited(want, w);
  return true;
}

std::optional<Inherited> NamespaceChange(const Located& l, const std::map<std::string, const Namespace*>& namespaces) {
  if (!l.resource->has_workload() || !(l.inherit_enrolled || l.inherit_mode)) return std::nullopt;
  const v1::Workload& w = l.resource->workload();
  auto it = namespaces.find(w.namespace_());
  Inherited want =
      ResolvedSettings(l.inherit_enrolled, l.inherit_mode, it == namespaces.end() ? nullptr : it->second, true, w);
  if (want == Inherited{w.enrolled(), w.mode()}) return std::nullopt;
  return want;
}

std::map<std::string, const Namespace*> IndexNamespaces(const std::vector<Namespace>& namespaces) {
  std::map<std::string, const Namespace*> out;
  for (const auto& ns : namespaces) out[ns.name] = &ns;
  return out;
}

void ApplyNamespaces(Result* r) {
  auto index = IndexNamespaces(r->namespaces);
  for (auto& l : r->resources) {
    if (auto want = NamespaceChange(l, index)) {
      SetInherited(*want, l.resource.Mutable()->mutable_workload());
      l.digest.reset();
    }
  }
}

}  // namespace zm::manifest
