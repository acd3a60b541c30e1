// Compile with memory: a policy change recompiles what it touches, not the mesh. Keeps what the last compile derived
// (each resource's digest as given, the endpoint indexes, the Services as given, identities per node) and, for the
// next input, redoes only what the added, changed and removed resources touch: a TrafficPermission needs no endpoint
// work, a Workload re-resolves the Services that select its old or new labels or name its addresses, a Service only
// itself. The result equals Compile() of the same input (tests/unit/controller/incremental_compile_test.cc compares
// digests over random change sequences).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/config/endpoints.h"
#include "controller/config/snapshot.h"

namespace zm::ctrl {

class IncrementalCompiler {
 public:
  struct Stats {
    bool incremental = false;      // false: a full Compile (first load, or see `fallback`)
    std::string fallback;          // why the last compile was a full one
    size_t changed = 0;            // resources added, changed or removed (incremental only)
    size_t services_resolved = 0;  // Services whose endpoints were computed (incremental only)
  };

  // Same contract as Compile(resources, defaults, previous). Incremental when `previous` holds exactly the resources
  // this compiler produced last and the defaults are the same; a full Compile otherwise. Takes the changed resources
  // out of `resources` and leaves the rest to the caller: freeing the whole mesh can wait until the push is out.
  std::shared_ptr<Snapshot> Compile(std::vector<manifest::Located>&& resources, const MeshDefaults& defaults,
                                    const Snapshot* previous);
  const Stats& last() const { return stats_; }

 private:
  struct Input {
    manifest::Digest digest{};
    uint64_t seen = 0;  // the generation (compile) that last saw this key
  };
  // A resource of the new input that differs from the last one (or a removal: located == nullptr).
  struct Change {
    std::string key;
    manifest::Located* located = nullptr;
    manifest::Digest digest{};
  };

  std::shared_ptr<Snapshot> Full(std::vector<manifest::Located> resources, const MeshDefaults& defaults,
                                 const Snapshot* previous, std::string why);
  // Why the last state cannot serve this compile; empty when it can.
  std::string Unusable(const MeshDefaults& defaults, const Snapshot* previous) const;
  // Finds what differs from the last input; false (with `why`) when only a full compile is sound.
  bool Diff(std::vector<manifest::Located>& resources, std::vector<Change>* changes, std::string* why);
  bool AddressesStayUnique(const std::vector<Change>& changes) const;
  void IndexWorkload(const zeromesh::v1::Workload& w);
  void UnindexWorkload(const zeromesh::v1::Workload& w);
  void IndexService(const std::string& key, std::shared_ptr<const zeromesh::v1::Resource> given);
  void UnindexService(const std::string& key);
  // Services whose endpoints can depend on workload `w` (selector matches its labels, or an explicit endpoint at one
  // of its addresses).
  void ServicesTouchedBy(const zeromesh::v1::Workload& w, std::set<std::string>* out) const;

  Stats stats_;
  bool usable_ = false;
  std::string unusable_;  // why not, when known
  uint64_t generation_ = 0;
  MeshDefaults defaults_;
  std::shared_ptr<const Snapshot> out_;  // the last result; the indexes point into its workloads
  std::unordered_map<std::string, Input> inputs_;
  // Each input's digest -> its entry in inputs_: an unchanged resource is found by the digest its decode left, with
  // no key to build (a key and a string hash per resource were most of a compile at 100,000 workloads).
  struct DigestHash {
    size_t operator()(const manifest::Digest& d) const;
  };
  std::unordered_map<manifest::Digest, std::pair<const std::string, Input>*, DigestHash> by_digest_;
  void SetInput(const std::string& key, const manifest::Digest& digest);
  void EraseInput(const std::string& key);
  endpoints::ByIp by_ip_;
  endpoints::ByLabel by_label_;
  std::unordered_map<std::string, std::shared_ptr<const zeromesh::v1::Resource>> services_;  // as given
  std::unordered_map<std::string, std::set<std::string>> services_by_label_;  // every selector label -> Services
  std::unordered_map<std::string, std::set<std::string>> services_by_ip_;     // explicit endpoint address -> Services
  std::map<std::string, std::map<std::string, int>> identities_;              // node -> "ns/sa" -> workloads
};

}  // namespace zm::ctrl
