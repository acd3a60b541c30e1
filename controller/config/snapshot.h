// A compiled, immutable mesh configuration at one version, and push construction (full / delta).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "controller/manifest/manifest.h"
#include "zeromesh/v1/config.pb.h"

namespace zm::ctrl {

struct MeshDefaults {
  std::string trust_domain = "cluster.local";
  uint32_t cert_ttl_seconds = 86400;
};

struct Snapshot {
  using Digest = manifest::Digest;
  using ResourcePtr = std::shared_ptr<const zeromesh::v1::Resource>;
  uint64_t version = 0;  // set by ConfigStore::Publish
  // manifest::KeyOf -> resource. Immutable once published, so a resource unchanged since the previous version is
  // the previous version's object: the history holds one copy of the mesh plus what changed, not one per version.
  std::map<std::string, ResourcePtr> resources;
  // SHA-256 of each resource's deterministic encoding, in the order of `resources` (Seal). Comparing two versions
  // (is anything new? what goes into a delta?) then encodes nothing: it used to encode both sides of every resource,
  // twice per change, which was most of the controller's work per policy change at 10,000 workloads.
  std::vector<Digest> digests;
  zeromesh::v1::MeshConfig mesh;                                    // effective values, defaults filled in
  std::map<std::string, std::set<std::string>> identities_by_node;  // node -> {"ns/sa"} (NodeAuthorizer)
  int64_t created_unix = 0;
  // The CA as of this version: a rotation publishes a new version with unchanged resources.
  std::string trust_bundle_pem;
  std::string ca_signer;  // Authority::signer_id()

  // Computes `digests` for snapshots built by hand (Compile seals its own). Resources changed afterwards need it again.
  void Seal();
  bool Sealed() const { return digests.size() == resources.size(); }
  bool SameResources(const Snapshot& other) const;
  bool NodeRuns(const std::string& node, const std::string& ns, const std::string& sa) const;
};

// Fills defaults, resolves Service endpoints from selectors, indexes identities per node, seals. The resources are
// moved into the snapshot (pass a copy to keep them). With `previous`, every resource equal to one of it is shared.
std::shared_ptr<Snapshot> Compile(std::vector<manifest::Located> resources, const MeshDefaults& defaults,
                                  const Snapshot* previous = nullptr);

zeromesh::v1::ResourceKey KeyProto(const zeromesh::v1::Resource& r);
// A full push of `s` without its resources (push_parts.h encodes the resources part by part).
// `bundle` overrides the snapshot's trust bundle when not empty (benchmarks and tests), here and below.
zeromesh::v1::ConfigPush FullPushHeader(const Snapshot& s, const std::string& epoch, const std::string& bundle);
zeromesh::v1::ConfigPush MakeFullPush(const Snapshot& s, const std::string& epoch, const std::string& bundle);
zeromesh::v1::ConfigPush MakeDeltaPush(const Snapshot& from, const Snapshot& to, const std::string& epoch,
                                       const std::string& bundle);

}  // namespace zm::ctrl
