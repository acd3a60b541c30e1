// Universal mode: Kubernetes-style YAML manifests (apiVersion zeromesh.io/v1alpha1) -> mesh resources.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controller/manifest/resource_digest.h"
#include "controller/manifest/shared_resource.h"
#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

constexpr const char* kApiVersion = "zeromesh.io/v1alpha1";

struct Error {
  std::string file;
  int line = 0;  // 1-based; 0 = whole file
  std::string reason;
};

struct Located {
  SharedResource resource;  // shared with the decode cache and the snapshots (shared_resource.h)
  std::string file;
  int line = 0;
  // ResourceDigest(resource) when known (the decode cache sets it for every resource it decodes; the incremental
  // compile finds what changed by it). Whoever changes `resource` must reset it.
  std::optional<Digest> digest;
  // Workloads whose manifest leaves out spec.enrolled / spec.mode take them from their Namespace (namespaces.h);
  // `resource` holds the value resolved last (enrolled: true, mode: unspecified before any Namespace applies).
  bool inherit_enrolled = false, inherit_mode = false;
};

// What a workload that leaves them out takes from its Namespace (namespaces.h).
struct Inherited {
  bool enrolled = false;
  zeromesh::v1::Mode mode = zeromesh::v1::MODE_UNSPECIFIED;
  bool operator==(const Inherited&) const = default;
};

// A Namespace (apiVersion v1, cluster-scoped), the object a Kubernetes user writes: its labels zeromesh.io/mesh and
// zeromesh.io/mode decide for its workloads where they do not say themselves (namespaces.h). Not a mesh resource: it
// is resolved into the workloads and never sent to agents.
struct Namespace {
  std::string name, file;
  int line = 0;
  std::optional<bool> enrolled;                              // zeromesh.io/mesh: enabled | disabled
  zeromesh::v1::Mode mode = zeromesh::v1::MODE_UNSPECIFIED;  // zeromesh.io/mode: STRICT | PERMISSIVE
};

// Gateway API ReferenceGrant (gateway.networking.k8s.io/v1beta1) in namespace `ns`: lets the `from` kinds of other
// namespaces refer to the `to` objects of this one. Not a mesh resource: it only decides which cross-namespace
// backendRefs of TCPRoutes are used (reference_grant.h).
struct ReferenceGrant {
  struct From {
    std::string group, kind, ns;
  };
  struct To {
    std::string group, kind, name;  // empty name: every object of the kind
  };
  std::string name, ns, file;
  int line = 0;
  std::vector<From> from;
  std::vector<To> to;
};

struct Result {
  std::vector<Located> resources;
  std::vector<ReferenceGrant> grants;
  std::vector<Namespace> namespaces;
  std::vector<Error> errors;
  // Problems that leave the set valid: a backendRef that no ReferenceGrant permits is left out of its route (so
  // removing a grant revokes at once instead of rejecting the set and keeping the old one in force).
  std::vector<Error> notices;
  bool ok() const { return errors.empty(); }
};

struct Limits {
  uint32_t max_cert_ttl_seconds = 86400;
};

// Decodes every document of one file's text (documents may be separated by ---). Appends to `out`.
void DecodeText(const std::string& text, const std::string& file, const Limits& limits, Result* out);
// Cross-document checks over a whole set: duplicate names (Namespaces too), duplicate workload IPs / service VIPs,
// >1 MeshConfig.
void CheckSet(Result* r);
// What each file decoded to last time, so a change to one file re-decodes only that file (with 10,000 workloads,
// decoding everything again costs about a second per change).
class SetIndex;
class DecodeCache {
 public:
  DecodeCache();
  ~DecodeCache();
  // Decoded documents and errors of `text` from `file`: reused when the file's text is unchanged.
  const Result& Decode(const std::string& file, std::string text, const Limits& limits);
  // Appends the resources `file` decoded to with their workloads resolved against `namespaces` (by name; see
  // ApplyNamespaces). Each workload remembers its digest for the settings it last resolved to, so a change elsewhere
  // re-encodes none of the workloads a Namespace decides for. `file` must have been decoded by this cache.
  void AppendResolved(const std::string& file, const std::map<std::string, const Namespace*>& namespaces,
                      std::vector<Located>* out);
  // Forgets files not in `present` (deleted ones).
  void Retain(const std::vector<std::string>& present);
  // True when `notices` differ from the last set seen (each distinct set is logged once, not on every rescan).
  bool NoticesChanged(const std::vector<Error>& notices);
  // CheckSet's duplicate indexes over the files decoded and retained (set_index.h).
  const SetIndex& index() const { return *index_; }

 private:
  // A workload once its Namespace changed it (enrolled and mode as resolved), with its digest.
  struct Resolved {
    Inherited settings;
    Digest digest{};
    SharedResource resource;
  };
  struct Entry {
    std::string text;
    Result decoded;
    std::vector<std::optional<Resolved>> resolved;  // parallel to decoded.resources
  };
  std::map<std::string, Entry> files_;
  std::string notices_;
  // CheckSet's duplicate indexes over the decoded resources of files_ (set_index.h), updated file by file.
  std::unique_ptr<SetIndex> index_;
};

// Reads every *.yaml / *.yml file directly in `dir` (hidden files skipped), decodes and checks the set, and resolves
// the workloads against the Namespaces of all files; notices are logged (once per distinct set with a cache).
Result LoadDir(const std::string& dir, const Limits& limits, DecodeCache* cache = nullptr);

// "<Kind>/<namespace>/<name>": unique resource key.
std::string KeyOf(const zeromesh::v1::Resource& r);
std::string KindName(const zeromesh::v1::Resource& r);

}  // namespace zm::manifest
