#include "controller/config/incremental_compile.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <unordered_set>
#include <utility>

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

namespace {

manifest::Digest GivenDigest(const manifest::Located& l) {
  return l.digest ? *l.digest : manifest::ResourceDigest(l.resource);
}

std::string Identity(const v1::Workload& w) {
  return w.namespace_() + "/" + w.service_account();
}

}  // namespace

std::shared_ptr<Snapshot> IncrementalCompiler::Compile(std::vector<manifest::Located>&& resources,
                                                       const MeshDefaults& defaults, const Snapshot* previous) {
  stats_ = {};
  std::vector<Change> changes;
  std::string why = Unusable(defaults, previous);
  if (why.empty()) Diff(resources, &changes, &why);
  if (why.empty() && !AddressesStayUnique(changes)) why = "a workload address given twice";
  if (!why.empty()) return Full(std::move(resources), defaults, previous, std::move(why));
  stats_.incremental = true;
  stats_.changed = changes.size();

  // The old versions leave the indexes first, so an address moving from one workload to another is no duplicate.
  std::set<std::string> nodes, services;
  std::vector<const v1::Workload*> touching;  // old and new versions of changed workloads
  for (const auto& c : changes) {
    auto old = out_->resources.find(c.key);
    if (old == out_->resources.end()) continue;
    if (old->second->has_workload()) {
      UnindexWorkload(old->second->workload());
      nodes.insert(old->second->workload().node());
      touching.push_back(&old->second->workload());
    } else if (old->second->has_service()) {
      UnindexService(c.key);
    }
  }
  // key -> the new version (null: removed) and its digest.
  std::map<std::string, std::pair<Snapshot::ResourcePtr, manifest::Digest>> updates;
  for (auto& c : changes) {
    if (c.located == nullptr) {
      EraseInput(c.key);
      updates[c.key] = {nullptr, {}};
      continue;
    }
    SetInput(c.key, c.digest);
    Snapshot::ResourcePtr r = c.located->resource.Share();
    if (r->has_service()) {
      IndexService(c.key, r);
      services.insert(c.key);
      continue;
    }
    if (r->has_workload()) {
      IndexWorkload(r->workload());
      nodes.insert(r->workload().node());
      touching.push_back(&r->workload());
    }
    updates[c.key] = {std::move(r), c.digest};  // Compile changes only Services and the MeshConfig
  }
  for (const auto* w : touching) ServicesTouchedBy(*w, &services);
  for (const auto& key : services) {
    v1::Resource r = *services_.at(key);
    endpoints::Resolve(by_ip_, by_label_, r.mutable_service());
    manifest::Digest d = manifest::ResourceDigest(r);
    updates[key] = {std::make_shared<const v1::Resource>(std::move(r)), d};
  }
  stats_.services_resolved = services.size();

  auto s = std::make_shared<Snapshot>();
  s->created_unix = std::time(nullptr);
  s->mesh = out_->mesh;
  s->identities_by_node = out_->identities_by_node;
  for (const auto& node : nodes) {
    auto it = identities_.find(node);
    if (it == identities_.end()) {
      s->identities_by_node.erase(node);
      continue;
    }
    auto& ids = s->identities_by_node[node];
    ids.clear();
    for (const auto& [id, n] : it->second) ids.insert(id);
  }
  // One merge walk of the last result and the updates (both ordered by key). A new version equal to the old one
  // keeps the old object, as Compile shares with `previous`.
  s->digests.reserve(out_->resources.size() + updates.size());
  auto add = [&](const std::string& key, Snapshot::ResourcePtr r, const manifest::Digest& d) {
    s->resources.emplace_hint(s->resources.end(), key, std::move(r));
    s->digests.push_back(d);
  };
  auto u = updates.begin();
  size_t i = 0;
  for (auto p = out_->resources.begin(); p != out_->resources.end(); ++p, ++i) {
    for (; u != updates.end() && u->first < p->first; ++u) {
      if (u->second.first) add(u->first, std::move(u->second.first), u->second.second);
    }
    if (u != updates.end() && u->first == p->first) {
      if (u->second.first) {
        // A new workload is always taken: the indexes point into it (its digest differs from the old one anyway).
        if (u->second.second == out_->digests[i] && !u->second.first->has_workload()) {
          add(p->first, p->second, out_->digests[i]);
        } else {
          add(p->first, std::move(u->second.first), u->second.second);
        }
      }
      ++u;
    } else {
      add(p->first, p->second, out_->digests[i]);
    }
  }
  for (; u != updates.end(); ++u) {
    if (u->second.first) add(u->first, std::move(u->second.first), u->second.second);
  }
  out_ = s;
  return s;
}

std::string IncrementalCompiler::Unusable(const MeshDefaults& defaults, const Snapshot* previous) const {
  if (!usable_) return unusable_.empty() ? "no previous compile" : unusable_;
  if (defaults.trust_domain != defaults_.trust_domain || defaults.cert_ttl_seconds != defaults_.cert_ttl_seconds) {
    return "the defaults changed";
  }
  if (previous == nullptr) return "no previous version";
  if (previous == out_.get()) return "";
  // A CA change republishes a copy of the last result (same objects); anything else was not compiled here.
  bool same = previous->Sealed() && previous->resources.size() == out_->resources.size();
  for (auto a = previous->resources.begin(), b = out_->resources.begin(); same && a != previous->resources.end();
       ++a, ++b) {
    same = a->second == b->second;
  }
  return same ? "" : "the previous version is not the last compiled one";
}

bool IncrementalCompiler::Diff(std::vector<manifest::Located>& resources, std::vector<Change>* changes,
                               std::string* why) {
  ++generation_;
  size_t found = 0;
  std::unordered_set<std::string> added;
  for (auto& l : resources) {
    manifest::Digest d = GivenDigest(l);
    if (auto hit = by_digest_.find(d); hit != by_digest_.end()) {  // unchanged (equal digests, equal resources)
      Input& in = hit->second->second;
      if (in.seen == generation_) {
        *why = "a key given twice: " + hit->second->first;
        return false;
      }
      in.seen = generation_;
      ++found;
      continue;
    }
    std::string key = manifest::KeyOf(l.resource);
    if (auto it = inputs_.find(key); it != inputs_.end()) {
      if (it->second.seen == generation_) {
        *why = "a key given twice: " + key;
        return false;
      }
      it->second.seen = generation_;
      ++found;
      if (it->second.digest == d) continue;
    } else if (!added.insert(key).second) {
      *why = "a key given twice: " + key;
      return false;
    }
    if (l.resource->has_mesh_config()) {
      *why = "the MeshConfig changed";
      return false;
    }
    changes->push_back({std::move(key), &l, d});
  }
  if (found < inputs_.size()) {
    for (const auto& [key, in] : inputs_) {
      if (in.seen == generation_) continue;
      if (key.rfind("MeshConfig/", 0) == 0) {
        *why = "the MeshConfig changed";
        return false;
      }
      changes->push_back({key, nullptr, {}});
    }
  }
  std::sort(changes->begin(), changes->end(), [](const Change& a, const Change& b) { return a.key < b.key; });
  return true;
}

size_t IncrementalCompiler::DigestHash::operator()(const manifest::Digest& d) const {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);  // SHA-256 bits are as good as any hash of them
  return h;
}

void IncrementalCompiler::SetInput(const std::string& key, const manifest::Digest& digest) {
  auto [it, fresh] = inputs_.try_emplace(key, Input{digest, generation_});
  if (!fresh) {
    by_digest_.erase(it->second.digest);
    it->second = Input{digest, generation_};
  }
  by_digest_[digest] = &*it;
}

void IncrementalCompiler::EraseInput(const std::string& key) {
  auto it = inputs_.find(key);
  if (it == inputs_.end()) return;
  by_digest_.erase(it->second.digest);
  inputs_.erase(it);
}

bool IncrementalCompiler::AddressesStayUnique(const std::vector<Change>& changes) const {
  std::unordered_set<std::string> freed, taken;
  for (const auto& c : changes) {
    auto old = out_->resources.find(c.key);
    if (old == out_->resources.end() || !old->second->has_workload()) continue;
    for (auto& ip : endpoints::WorkloadIps(old->second->workload())) freed.insert(std::move(ip));
  }
  for (const auto& c : changes) {
    if (c.located == nullptr || !c.located->resource->has_workload()) continue;
    for (auto& ip : endpoints::WorkloadIps(c.located->resource->workload())) {
      if (by_ip_.count(ip) > 0 && freed.count(ip) == 0) return false;
      if (!taken.insert(std::move(ip)).second) return false;
    }
  }
  return true;
}

void IncrementalCompiler::IndexWorkload(const v1::Workload& w) {
  for (auto& ip : endpoints::WorkloadIps(w)) {
    auto [it, fresh] = by_ip_.emplace(std::move(ip), &w);
    if (!fresh) {
      unusable_ = "a workload address given twice";  // Compile keeps the last one: only a full compile matches it
      usable_ = false;
      continue;
    }
    for (const auto& [k, v] : w.labels())
      by_label_[endpoints::LabelKey(w.namespace_(), k, v)].emplace_back(&it->first, &w);
  }
  ++identities_[w.node()][Identity(w)];
}

void IncrementalCompiler::UnindexWorkload(const v1::Workload& w) {
  for (const auto& ip : endpoints::WorkloadIps(w)) {
    auto it = by_ip_.find(ip);
    if (it == by_ip_.end() || it->second != &w) continue;
    for (const auto& [k, v] : w.labels()) {
      auto bucket = by_label_.find(endpoints::LabelKey(w.namespace_(), k, v));
      if (bucket == by_label_.end()) continue;
      auto& list = bucket->second;
      list.erase(std::remove_if(list.begin(), list.end(), [&](const auto& e) { return e.second == &w; }), list.end());
      if (list.empty()) by_label_.erase(bucket);
    }
    by_ip_.erase(it);
  }
  auto node = identities_.find(w.node());
  if (node == identities_.end()) return;
  auto id = node->second.find(Identity(w));
  if (id != node->second.end() && --id->second == 0) node->second.erase(id);
  if (node->second.empty()) identities_.erase(node);
}

void IncrementalCompiler::IndexService(const std::string& key, std::shared_ptr<const v1::Resource> given) {
  const auto& svc = given->service();
  for (const auto& [k, v] : svc.selector()) services_by_label_[endpoints::LabelKey(svc.namespace_(), k, v)].insert(key);
  for (const auto& e : svc.endpoints()) services_by_ip_[e.ip()].insert(key);
  services_[key] = std::move(given);
}

void IncrementalCompiler::UnindexService(const std::string& key) {
  auto it = services_.find(key);
  if (it == services_.end()) return;
  const auto& svc = it->second->service();
  auto drop = [&](std::unordered_map<std::string, std::set<std::string>>& index, const std::string& at) {
    auto entry = index.find(at);
    if (entry == index.end()) return;
    entry->second.erase(key);
    if (entry->second.empty()) index.erase(entry);
  };
  for (const auto& [k, v] : svc.selector()) drop(services_by_label_, endpoints::LabelKey(svc.namespace_(), k, v));
  for (const auto& e : svc.endpoints()) drop(services_by_ip_, e.ip());
  services_.erase(it);
}

void IncrementalCompiler::ServicesTouchedBy(const v1::Workload& w, std::set<std::string>* out) const {
  for (const auto& [k, v] : w.labels()) {
    auto it = services_by_label_.find(endpoints::LabelKey(w.namespace_(), k, v));
    if (it == services_by_label_.end()) continue;
    for (const auto& key : it->second) {
      if (endpoints::Matches(services_.at(key)->service().selector(), w.labels())) out->insert(key);
    }
  }
  for (const auto& ip : endpoints::WorkloadIps(w)) {
    auto it = services_by_ip_.find(ip);
    if (it != services_by_ip_.end()) out->insert(it->second.begin(), it->second.end());
  }
}

std::shared_ptr<Snapshot> IncrementalCompiler::Full(std::vector<manifest::Located> resources,
                                                    const MeshDefaults& defaults, const Snapshot* previous,
                                                    std::string why) {
  inputs_.clear();
  by_digest_.clear();
  by_ip_.clear();
  by_label_.clear();
  services_.clear();
  services_by_label_.clear();
  services_by_ip_.clear();
  identities_.clear();
  out_.reset();
  usable_ = true;
  unusable_.clear();
  stats_.fallback = std::move(why);
  std::map<std::string, std::shared_ptr<const v1::Resource>> given;  // the Services as given, the last per key
  for (auto& l : resources) {
    std::string key = manifest::KeyOf(l.resource);
    manifest::Digest d = GivenDigest(l);
    if (l.resource->has_workload()) l.digest = d;  // Compile keeps a workload's digest
    if (!inputs_.insert_or_assign(key, Input{d, generation_}).second) {
      usable_ = false;  // Compile keeps the last resource of a key: the next input is compared in full as well
      unusable_ = "a key given twice: " + key;
    }
    if (l.resource->has_service()) given[key] = l.resource.Share();
  }
  by_digest_.reserve(inputs_.size());
  for (auto& entry : inputs_) by_digest_[entry.second.digest] = &entry;
  auto s = ctrl::Compile(std::move(resources), defaults, previous);
  for (auto& [key, r] : given) IndexService(key, std::move(r));
  for (const auto& [key, r] : s->resources) {
    if (r->has_workload()) IndexWorkload(r->workload());
  }
  defaults_ = defaults;
  out_ = s;
  return s;
}

}  // namespace zm::ctrl
