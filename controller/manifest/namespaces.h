// Namespaces decide for their workloads, the same way in both controller modes: a Namespace's labels
// zeromesh.io/mesh (enabled | disabled) and zeromesh.io/mode (STRICT | PERMISSIVE) enroll its workloads and choose
// their mode, and a workload's own setting wins (universal: spec.enrolled / spec.mode; Kubernetes: the pod's labels
// of the same names), as Kubernetes pod labels override their namespace's.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controller/manifest/manifest.h"

namespace zm::manifest {

constexpr const char* kNamespaceKind = "Namespace";
constexpr const char* kNamespaceApiVersion = "v1";
constexpr const char* kMeshLabel = "zeromesh.io/mesh";
constexpr const char* kModeLabel = "zeromesh.io/mode";
constexpr const char* kMeshEnabled = "enabled";
constexpr const char* kMeshDisabled = "disabled";

// The value of a zeromesh.io/mode label: "" when it is STRICT or PERMISSIVE (set in *mode), else why not.
std::string ParseModeLabel(const std::string& value, zeromesh::v1::Mode* mode);

// What `w` resolves to: enrolled from `ns` when it says, else `enrolled_default`; mode from `ns`, else unspecified;
// each only where `w` inherits it (its own value otherwise).
Inherited ResolvedSettings(bool inherit_enrolled, bool inherit_mode, const Namespace* ns, bool enrolled_default,
                           const zeromesh::v1::Workload& w);

// Writes `s` into `w`.
void SetInherited(const Inherited& s, zeromesh::v1::Workload* w);

// Sets what `w` inherits (ResolvedSettings): enrolled from `ns` when it says, else `enrolled_default`; mode from `ns`,
// else unspecified (the MeshConfig default applies). `ns` may be null (no such Namespace). Returns whether `w` changed.
bool ResolveWorkload(bool inherit_enrolled, bool inherit_mode, const Namespace* ns, bool enrolled_default,
                     zeromesh::v1::Workload* w);

// The Namespaces of a set by name (the last of a name; a duplicate is CheckSet's error).
std::map<std::string, const Namespace*> IndexNamespaces(const std::vector<Namespace>& namespaces);

// Universal mode: what the workload of `l` resolves to against `namespaces` (by name; a manifest that leaves enrolled
// out means enrolled) when that differs from what it holds; nothing for a resource that is no such workload or would
// not change, so that a shared resource is copied only when it must change.
std::optional<Inherited> NamespaceChange(const Located& l, const std::map<std::string, const Namespace*>& namespaces);

// Universal mode: resolves the workloads of `r` against its Namespaces (run once every file is read: a Namespace in
// one file decides for workloads in others). What a manifest leaves out defaults to enrolled, as before Namespaces
// existed. A workload that changes loses its known digest.
void ApplyNamespaces(Result* r);

}  // namespace zm::manifest
