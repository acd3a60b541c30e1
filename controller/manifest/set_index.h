// CheckSet's duplicate checks (names, workload IPs, service VIPs, one MeshConfig) kept from one load of a manifest
// directory to the next. The decode cache adds a file's resources when it decodes the file and removes them when the
// file changes or goes, so a load costs the changed files and the duplicates, not the mesh: at 100,000 workloads,
// rebuilding these maps was about half of a policy change's controller work. The errors equal CheckSet's, in its
// order (resource order; a later definition names the first, a later MeshConfig the one before it).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "controller/manifest/manifest.h"

namespace zm::manifest {

class SetIndex {
 public:
  // A file's decoded resources. The index points into them: they must neither move nor change until Remove.
  void Add(const std::vector<Located>& resources);
  void Remove(const std::vector<Located>& resources);
  // CheckSet's errors about duplicate names and addresses and a second MeshConfig over the indexed files, ordered
  // as CheckSet orders them when the resources are listed file by file (by file name) in decoded order.
  void AppendErrors(std::vector<Error>* out) const;
  // The Service named ns/name that CheckSet's reference checks see: the last one of that key. Null if none.
  const zeromesh::v1::Service* FindService(const std::string& ns, const std::string& name) const;

 private:
  // One definition of a name or address: the resource, its position in its file, which of its addresses.
  struct Occurrence {
    const Located* l = nullptr;
    uint32_t index = 0;  // in its file's resources
    uint32_t sub = 0;    // 0: the name; 1 + i: its i-th address, or 1: the MeshConfig check
  };
  // Each name or address -> its definitions in CheckSet's order; `dup` holds those with more than one.
  struct Table {
    std::unordered_map<std::string, std::vector<Occurrence>> at;
    std::unordered_set<std::string> dup;
    void Insert(const std::string& key, const Occurrence& o);
    void Erase(const std::string& key, const Located* l);
  };
  // Visits what CheckSet indexes of `l`: (table, key, sub) for its name and each address, in CheckSet's order.
  template <typename F>
  void ForEachKey(const Located& l, F&& f);

  Table names_, ips_, vips_;
  std::vector<Occurrence> mesh_configs_;  // in CheckSet's order
};

}  // namespace zm::manifest
