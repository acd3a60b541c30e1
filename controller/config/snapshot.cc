#include "controller/config/snapshot.h"

#include "controller/config/endpoints.h"

#include "api/cpp/resource_key.h"

#include <algorithm>
#include <ctime>
#include <optional>
#include <unordered_map>

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

namespace {

// Same content: by digest when both sides are sealed (index i of each), else by encoding (for snapshots built by
// hand and not sealed).
bool SameContent(const Snapshot& a, size_t ia, const v1::Resource& ra, const Snapshot& b, size_t ib,
                 const v1::Resource& rb) {
  if (a.Sealed() && b.Sealed()) return a.digests[ia] == b.digests[ib];
  return manifest::ResourceDigest(ra) == manifest::ResourceDigest(rb);
}

}  // namespace

void Snapshot::Seal() {
  digests.clear();
  digests.reserve(resources.size());
  for (const auto& [key, r] : resources) digests.push_back(manifest::ResourceDigest(*r));
}

bool Snapshot::SameResources(const Snapshot& other) const {
  if (resources.size() != other.resources.size()) return false;
  size_t i = 0;
  for (auto a = resources.begin(), b = other.resources.begin(); a != resources.end(); ++a, ++b, ++i) {
    if (a->first != b->first) return false;
    if (a->second != b->second && !SameContent(*this, i, *a->second, other, i, *b->second)) return false;
  }
  return true;
}

bool Snapshot::NodeRuns(const std::string& node, const std::string& ns, const std::string& sa) const {
  auto it = identities_by_node.find(node);
  return it != identities_by_node.end() && it->second.count(ns + "/" + sa) > 0;
}

namespace {

void FillMeshDefaults(const MeshDefaults& d, v1::MeshConfig* c) {
  if (c->name().empty()) c->set_name("default");
  if (c->trust_domain().empty()) c->set_trust_domain(d.trust_domain);
  if (c->default_mode() == v1::MODE_UNSPECIFIED) c->set_default_mode(v1::STRICT);
  if (c->default_policy() == v1::ACTION_UNSPECIFIED) c->set_default_policy(v1::ALLOW);
  if (c->cert_ttl_seconds() == 0) c->set_cert_ttl_seconds(d.cert_ttl_seconds);
}

}  // namespace

std::shared_ptr<Snapshot> Compile(std::vector<manifest::Located> resources, const MeshDefaults& defaults,
                                  const Snapshot* previous) {
  auto s = std::make_shared<Snapshot>();
  s->created_unix = std::time(nullptr);
  // Built here, frozen (shared or moved into the snapshot) at the end. A known digest stays valid only for what this
  // function does not change: workloads.
  struct Work {
    manifest::SharedResource r;  // a workload stays the decode cache's object
    std::optional<manifest::Digest> digest;
  };
  // A sorted vector, not a map: 100,000 map insertions were a third of a change's work at that scale.
  std::vector<std::pair<std::string, Work>> work;
  work.reserve(resources.size() + 1);
  endpoints::ByIp by_ip;
  bool have_mesh = false;
  for (auto& l : resources) {
    Work w{std::move(l.resource), l.digest};
    if (w.r->has_mesh_config()) {
      FillMeshDefaults(defaults, w.r.Mutable()->mutable_mesh_config());
      s->mesh = w.r->mesh_config();
      have_mesh = true;
    }
    if (!w.r->has_workload()) w.digest.reset();
    std::string key = manifest::KeyOf(*w.r);
    work.emplace_back(std::move(key), std::move(w));
  }
  if (!have_mesh) {
    v1::Resource r;
    FillMeshDefaults(defaults, r.mutable_mesh_config());
    s->mesh = r.mesh_config();
    std::string key = manifest::KeyOf(r);
    work.emplace_back(std::move(key), Work{std::move(r), std::nullopt});
  }
  std::stable_sort(work.begin(), work.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // One resource per key, the last given (as the manifest checks already require).
  size_t kept = 0;
  for (size_t i = 0; i < work.size(); ++i) {
    if (i + 1 < work.size() && work[i + 1].first == work[i].first) continue;
    if (kept != i) work[kept] = std::move(work[i]);
    ++kept;
  }
  work.erase(work.begin() + static_cast<std::ptrdiff_t>(kept), work.end());
  for (const auto& [key, w] : work) {
    if (!w.r->has_workload()) continue;
    const auto& wl = w.r->workload();
    for (auto& ip : endpoints::WorkloadIps(wl)) by_ip[std::move(ip)] = &wl;  // dual stack: an endpoint per address
    s->identities_by_node[wl.node()].insert(wl.namespace_() + "/" + wl.service_account());
  }
  endpoints::ByLabel by_label;
  for (const auto& [ip, w] : by_ip) {
    for (const auto& [k, v] : w->labels()) by_label[endpoints::LabelKey(w->namespace_(), k, v)].emplace_back(&ip, w);
  }
  for (auto& [key, w] : work) {
    if (w.r->has_service()) endpoints::Resolve(by_ip, by_label, w.r.Mutable()->mutable_service());
  }
  // Seal, sharing what the previous version already holds (both maps are ordered by key: one merge walk).
  s->digests.reserve(work.size());
  const bool share = previous != nullptr && previous->Sealed();
  size_t pi = 0;
  auto pit = share ? previous->resources.cbegin() : decltype(previous->resources.cbegin()){};
  for (auto& [key, w] : work) {
    manifest::Digest d = w.digest ? *w.digest : manifest::ResourceDigest(*w.r);
    Snapshot::ResourcePtr shared;
    if (share) {
      while (pit != previous->resources.cend() && pit->first < key) {
        ++pit;
        ++pi;
      }
      if (pit != previous->resources.cend() && pit->first == key && previous->digests[pi] == d) shared = pit->second;
    }
    s->resources.emplace_hint(s->resources.end(), key, shared ? std::move(shared) : w.r.Share());
    s->digests.push_back(d);
  }
  return s;
}

v1::ResourceKey KeyProto(const v1::Resource& r) {
  return api::KeyOf(r);
}

v1::ConfigPush FullPushHeader(const Snapshot& s, const std::string& epoch, const std::string& bundle) {
  v1::ConfigPush p;
  p.set_version(s.version);
  p.set_epoch(epoch);
  p.set_full(true);
  p.set_trust_bundle_pem(bundle.empty() ? s.trust_bundle_pem : bundle);
  p.set_ca_signer(s.ca_signer);
  return p;
}

v1::ConfigPush MakeFullPush(const Snapshot& s, const std::string& epoch, const std::string& bundle) {
  v1::ConfigPush p = FullPushHeader(s, epoch, bundle);
  for (const auto& [key, r] : s.resources) *p.add_upserted() = *r;
  return p;
}

v1::ConfigPush MakeDeltaPush(const Snapshot& from, const Snapshot& to, const std::string& epoch,
                             const std::string& bundle) {
  v1::ConfigPush p;
  p.set_version(to.version);
  p.set_epoch(epoch);
  p.set_full(false);
  p.set_base_version(from.version);
  p.set_trust_bundle_pem(bundle.empty() ? to.trust_bundle_pem : bundle);
  p.set_ca_signer(to.ca_signer);
  // Both maps are ordered by key: one merge walk finds the new, changed and removed resources.
  auto f = from.resources.begin();
  size_t fi = 0, ti = 0;
  for (auto t = to.resources.begin(); t != to.resources.end(); ++t, ++ti) {
    for (; f != from.resources.end() && f->first < t->first; ++f, ++fi) *p.add_removed() = KeyProto(*f->second);
    if (f != from.resources.end() && f->first == t->first) {
      if (f->second != t->second && !SameContent(from, fi, *f->second, to, ti, *t->second)) {
        *p.add_upserted() = *t->second;
      }
      ++f;
      ++fi;
    } else {
      *p.add_upserted() = *t->second;
    }
  }
  for (; f != from.resources.end(); ++f) *p.add_removed() = KeyProto(*f->second);
  return p;
}

}  // namespace zm::ctrl
