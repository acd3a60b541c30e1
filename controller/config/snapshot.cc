#include "controller/config/snapshot.h"

#include "api/cpp/resource_key.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/sha.h>

#include <algorithm>
#include <ctime>
#include <unordered_map>

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

namespace {

std::string DeterministicBytes(const v1::Resource& m) {
  std::string out;
  google::protobuf::io::StringOutputStream raw(&out);
  google::protobuf::io::CodedOutputStream coded(&raw);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// Equality by deterministic serialization (reflection-based MessageDifferencer is several times slower); for
// snapshots that were not sealed.
bool SameBytes(const v1::Resource& a, const v1::Resource& b) {
  return DeterministicBytes(a) == DeterministicBytes(b);
}

// Same content: by digest when both sides are sealed (index i of each), else by encoding.
bool SameContent(const Snapshot& a, size_t ia, const v1::Resource& ra, const Snapshot& b, size_t ib,
                 const v1::Resource& rb) {
  if (a.Sealed() && b.Sealed()) return a.digests[ia] == b.digests[ib];
  return SameBytes(ra, rb);
}

}  // namespace

void Snapshot::Seal() {
  digests.clear();
  digests.reserve(resources.size());
  std::string bytes;
  for (const auto& [key, r] : resources) {
    bytes = DeterministicBytes(r);
    Digest d;
    SHA256(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), d.data());
    digests.push_back(d);
  }
}

bool Snapshot::SameResources(const Snapshot& other) const {
  if (resources.size() != other.resources.size()) return false;
  size_t i = 0;
  for (auto a = resources.begin(), b = other.resources.begin(); a != resources.end(); ++a, ++b, ++i) {
    if (a->first != b->first || !SameContent(*this, i, a->second, other, i, b->second)) return false;
  }
  return true;
}

bool Snapshot::NodeRuns(const std::string& node, const std::string& ns, const std::string& sa) const {
  auto it = identities_by_node.find(node);
  return it != identities_by_node.end() && it->second.count(ns + "/" + sa) > 0;
}

namespace {

bool Matches(const google::protobuf::Map<std::string, std::string>& selector,
             const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

void FillMeshDefaults(const MeshDefaults& d, v1::MeshConfig* c) {
  if (c->name().empty()) c->set_name("default");
  if (c->trust_domain().empty()) c->set_trust_domain(d.trust_domain);
  if (c->default_mode() == v1::MODE_UNSPECIFIED) c->set_default_mode(v1::STRICT);
  if (c->default_policy() == v1::ACTION_UNSPECIFIED) c->set_default_policy(v1::ALLOW);
  if (c->cert_ttl_seconds() == 0) c->set_cert_ttl_seconds(d.cert_ttl_seconds);
}

}  // namespace

std::shared_ptr<Snapshot> Compile(std::vector<manifest::Located> resources, const MeshDefaults& defaults) {
  auto s = std::make_shared<Snapshot>();
  s->created_unix = std::time(nullptr);
  std::map<std::string, const v1::Workload*> by_ip;
  bool have_mesh = false;
  for (auto& l : resources) {
    v1::Resource r = std::move(l.resource);
    if (r.has_mesh_config()) {
      FillMeshDefaults(defaults, r.mutable_mesh_config());
      s->mesh = r.mesh_config();
      have_mesh = true;
    }
    s->resources[manifest::KeyOf(r)] = std::move(r);
  }
  if (!have_mesh) {
    v1::Resource r;
    FillMeshDefaults(defaults, r.mutable_mesh_config());
    s->mesh = r.mesh_config();
    s->resources[manifest::KeyOf(r)] = std::move(r);
  }
  for (const auto& [key, r] : s->resources) {
    if (!r.has_workload()) continue;
    const auto& w = r.workload();
    by_ip[w.ip()] = &w;
    s->identities_by_node[w.node()].insert(w.namespace_() + "/" + w.service_account());
  }
  // Workloads by "namespace/key=value" of each label: a selector only looks at the workloads carrying its first
  // label instead of every workload (1,000 services x 10,000 workloads would be 10M label checks per change).
  std::unordered_map<std::string, std::vector<std::pair<const std::string*, const v1::Workload*>>> by_label;
  for (const auto& [ip, w] : by_ip) {
    for (const auto& [k, v] : w->labels()) by_label[w->namespace_() + "/" + k + "=" + v].emplace_back(&ip, w);
  }
  for (auto& [key, r] : s->resources) {
    if (!r.has_service()) continue;
    auto* svc = r.mutable_service();
    std::map<std::string, v1::Endpoint> eps;  // by IP: explicit and selected endpoints merge
    for (const auto& e : svc->endpoints()) eps[e.ip()] = e;
    if (!svc->selector().empty()) {
      const auto& [k0, v0] = *svc->selector().begin();
      if (auto it = by_label.find(svc->namespace_() + "/" + k0 + "=" + v0); it != by_label.end()) {
        for (const auto& [ip, w] : it->second) {
          if (Matches(svc->selector(), w->labels())) eps[*ip].set_ip(*ip);
        }
      }
    }
    svc->clear_endpoints();
    for (auto& [ip, e] : eps) {
      if (auto it = by_ip.find(ip); it != by_ip.end()) {
        e.set_workload(it->second->namespace_() + "/" + it->second->name());
        e.set_node(it->second->node());
      }
      *svc->add_endpoints() = e;
    }
  }
  s->Seal();
  return s;
}

v1::ResourceKey KeyProto(const v1::Resource& r) {
  return api::KeyOf(r);
}

v1::ConfigPush MakeFullPush(const Snapshot& s, const std::string& epoch, const std::string& bundle) {
  v1::ConfigPush p;
  p.set_version(s.version);
  p.set_epoch(epoch);
  p.set_full(true);
  p.set_trust_bundle_pem(bundle.empty() ? s.trust_bundle_pem : bundle);
  p.set_ca_signer(s.ca_signer);
  for (const auto& [key, r] : s.resources) *p.add_upserted() = r;
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
    for (; f != from.resources.end() && f->first < t->first; ++f, ++fi) *p.add_removed() = KeyProto(f->second);
    if (f != from.resources.end() && f->first == t->first) {
      if (!SameContent(from, fi, f->second, to, ti, t->second)) *p.add_upserted() = t->second;
      ++f;
      ++fi;
    } else {
      *p.add_upserted() = t->second;
    }
  }
  for (; f != from.resources.end(); ++f) *p.add_removed() = KeyProto(f->second);
  return p;
}

}  // namespace zm::ctrl
