#include "controller/manifest/set_index.h"

#include <algorithm>

#include "controller/manifest/every_address.h"
#include "controller/manifest/set_errors.h"

namespace zm::manifest {
namespace {

// CheckSet's order: files by name (every file of a load is in the same directory), then decoded order, then the name
// before the addresses.
template <typename O>
bool Before(const O& a, const O& b) {
  if (a.l->file != b.l->file) return a.l->file < b.l->file;
  if (a.index != b.index) return a.index < b.index;
  return a.sub < b.sub;
}

std::string Where(const Located* l) {
  return l->file + ":" + std::to_string(l->line);
}

}  // namespace

void SetIndex::Table::Insert(const std::string& key, const Occurrence& o) {
  auto& list = at[key];
  list.insert(std::upper_bound(list.begin(), list.end(), o, Before<Occurrence>), o);
  if (list.size() > 1) dup.insert(key);
}

void SetIndex::Table::Erase(const std::string& key, const Located* l) {
  auto it = at.find(key);
  if (it == at.end()) return;  // a resource listing one address twice: its first visit took both
  auto& list = it->second;
  list.erase(std::remove_if(list.begin(), list.end(), [&](const Occurrence& o) { return o.l == l; }), list.end());
  if (list.size() < 2) dup.erase(key);
  if (list.empty()) at.erase(it);
}

template <typename F>
void SetIndex::ForEachKey(const Located& l, F&& f) {
  f(names_, KeyOf(l.resource), 0u);
  uint32_t sub = 1;
  if (l.resource->has_workload()) {
    for (const auto& ip : EveryIp(l.resource->workload())) f(ips_, ip, sub++);
  } else if (l.resource->has_service() && !l.resource->service().vip().empty()) {
    for (const auto& vip : EveryVip(l.resource->service())) f(vips_, vip, sub++);
  }
}

void SetIndex::Add(const std::vector<Located>& resources) {
  for (uint32_t i = 0; i < resources.size(); ++i) {
    const Located& l = resources[i];
    ForEachKey(l, [&](Table& t, const std::string& key, uint32_t sub) { t.Insert(key, {&l, i, sub}); });
    if (l.resource->has_mesh_config()) {
      Occurrence o{&l, i, 1};
      mesh_configs_.insert(std::upper_bound(mesh_configs_.begin(), mesh_configs_.end(), o, Before<Occurrence>), o);
    }
  }
}

void SetIndex::Remove(const std::vector<Located>& resources) {
  for (const Located& l : resources) {
    ForEachKey(l, [&](Table& t, const std::string& key, uint32_t) { t.Erase(key, &l); });
    if (l.resource->has_mesh_config()) {
      mesh_configs_.erase(
          std::remove_if(mesh_configs_.begin(), mesh_configs_.end(), [&](const Occurrence& o) { return o.l == &l; }),
          mesh_configs_.end());
    }
  }
}

void SetIndex::AppendErrors(std::vector<Error>* out) const {
  struct Found {
    const Located* l = nullptr;  // where the error is, as an Occurrence (for Before)
    uint32_t index = 0, sub = 0;
    Error error;
  };
  std::vector<Found> found;
  auto add = [&](const Occurrence& o, std::string reason) {
    found.push_back({o.l, o.index, o.sub, {o.l->file, o.l->line, std::move(reason)}});
  };
  for (const auto& key : names_.dup) {
    const auto& list = names_.at.at(key);
    for (size_t i = 1; i < list.size(); ++i) {
      add(list[i], DuplicateNameReason(key, Where(list[0].l)));
    }
  }
  for (const auto& key : ips_.dup) {
    const auto& list = ips_.at.at(key);
    for (size_t i = 1; i < list.size(); ++i) {
      add(list[i], DuplicateIpReason(key, Where(list[0].l)));
    }
  }
  for (const auto& key : vips_.dup) {
    const auto& list = vips_.at.at(key);
    for (size_t i = 1; i < list.size(); ++i) {
      add(list[i], DuplicateVipReason(key, Where(list[0].l)));
    }
  }
  // Each MeshConfig after the first names the one before it.
  for (size_t i = 1; i < mesh_configs_.size(); ++i) {
    add(mesh_configs_[i], SecondMeshConfigReason(Where(mesh_configs_[i - 1].l)));
  }
  std::sort(found.begin(), found.end(), Before<Found>);
  for (auto& f : found) out->push_back(std::move(f.error));
}

const zeromesh::v1::Service* SetIndex::FindService(const std::string& ns, const std::string& name) const {
  auto it = names_.at.find("Service/" + ns + "/" + name);
  return it == names_.at.end() ? nullptr : &it->second.back().l->resource->service();
}

}  // namespace zm::manifest
