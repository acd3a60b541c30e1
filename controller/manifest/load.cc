// Reading a manifest directory and the checks that span documents and files.
#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "common/log.h"
#include "controller/fs_util.h"
#include "controller/manifest/every_address.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/namespaces.h"
#include "controller/manifest/reference_grant.h"
#include "controller/manifest/set_errors.h"
#include "controller/manifest/set_index.h"
#include "controller/manifest/traffic_decode.h"

namespace zm::manifest {

std::string KindName(const zeromesh::v1::Resource& r) {
  switch (r.kind_case()) {
    case zeromesh::v1::Resource::kWorkload:
      return "Workload";
    case zeromesh::v1::Resource::kService:
      return "Service";
    case zeromesh::v1::Resource::kTrafficPermission:
      return "TrafficPermission";
    case zeromesh::v1::Resource::kMeshConfig:
      return "MeshConfig";
    case zeromesh::v1::Resource::kTcpRoute:
      return "TCPRoute";
    case zeromesh::v1::Resource::kServicePolicy:
      return "ServicePolicy";
    case zeromesh::v1::Resource::kHttpRoute:
      return "HTTPRoute";
    case zeromesh::v1::Resource::kGrpcRoute:
      return "GRPCRoute";
    default:
      return "Unknown";
  }
}

std::string KeyOf(const zeromesh::v1::Resource& r) {
  switch (r.kind_case()) {
    case zeromesh::v1::Resource::kWorkload:
      return "Workload/" + r.workload().namespace_() + "/" + r.workload().name();
    case zeromesh::v1::Resource::kService:
      return "Service/" + r.service().namespace_() + "/" + r.service().name();
    case zeromesh::v1::Resource::kTrafficPermission:
      return "TrafficPermission/" + r.traffic_permission().namespace_() + "/" + r.traffic_permission().name();
    case zeromesh::v1::Resource::kMeshConfig:
      return "MeshConfig//" + r.mesh_config().name();
    case zeromesh::v1::Resource::kTcpRoute:
      return "TCPRoute/" + r.tcp_route().namespace_() + "/" + r.tcp_route().name();
    case zeromesh::v1::Resource::kServicePolicy:
      return "ServicePolicy/" + r.service_policy().namespace_() + "/" + r.service_policy().name();
    case zeromesh::v1::Resource::kHttpRoute:
      return "HTTPRoute/" + r.http_route().namespace_() + "/" + r.http_route().name();
    case zeromesh::v1::Resource::kGrpcRoute:
      return "GRPCRoute/" + r.grpc_route().namespace_() + "/" + r.grpc_route().name();
    default:
      return "Unknown//";
  }
}

namespace {

// CheckSet after the duplicate names and addresses: Namespace names, references, ReferenceGrants. `find_service`
// null: the Services are found in r->resources.
void CheckSetRest(Result* r, const ServiceLookup* find_service) {
  std::map<std::string, const Namespace*> namespaces;
  for (const auto& ns : r->namespaces) {
    if (auto [it, fresh] = namespaces.emplace(ns.name, &ns); !fresh) {
      r->errors.push_back({ns.file, ns.line,
                           "duplicate name: Namespace//" + ns.name + " is already defined at " + it->second->file +
                               ":" + std::to_string(it->second->line)});
    }
  }
  if (find_service != nullptr) {
    CheckTrafficRefs(r, *find_service);
  } else {
    CheckTrafficRefs(r);
  }
  ApplyReferenceGrants(r);
}

}  // namespace

void CheckSet(Result* r) {
  // Hash maps: ordered ones of every key and address were a quarter of a policy change's work at 10,000 workloads.
  // The errors follow the order of r->resources either way.
  std::unordered_map<std::string, const Located*> by_key, by_ip, by_vip;
  by_key.reserve(r->resources.size());
  by_ip.reserve(r->resources.size());
  const Located* mesh_config = nullptr;
  auto where = [](const Located* l) { return l->file + ":" + std::to_string(l->line); };
  for (const auto& l : r->resources) {
    std::string key = KeyOf(l.resource);
    if (auto [it, fresh] = by_key.try_emplace(key, &l); !fresh) {
      r->errors.push_back({l.file, l.line, DuplicateNameReason(key, where(it->second))});
    }
    if (l.resource->has_workload()) {
      for (const auto& ip : EveryIp(l.resource->workload())) {
        if (auto [it, fresh] = by_ip.emplace(ip, &l); !fresh) {
          r->errors.push_back({l.file, l.line, DuplicateIpReason(ip, where(it->second))});
        }
      }
    } else if (l.resource->has_service() && !l.resource->service().vip().empty()) {
      for (const auto& vip : EveryVip(l.resource->service())) {
        if (auto [it, fresh] = by_vip.emplace(vip, &l); !fresh) {
          r->errors.push_back({l.file, l.line, DuplicateVipReason(vip, where(it->second))});
        }
      }
    } else if (l.resource->has_mesh_config()) {
      if (mesh_config != nullptr) {
        r->errors.push_back({l.file, l.line, SecondMeshConfigReason(where(mesh_config))});
      }
      mesh_config = &l;
    }
  }
  CheckSetRest(r, nullptr);
}

DecodeCache::DecodeCache() : index_(std::make_unique<SetIndex>()) {}
DecodeCache::~DecodeCache() = default;

const Result& DecodeCache::Decode(const std::string& file, std::string text, const Limits& limits) {
  auto it = files_.find(file);
  if (it != files_.end() && it->second.text == text) return it->second.decoded;
  Entry e;
  DecodeText(text, file, limits, &e.decoded);
  // Once per decoded resource: the incremental compile finds what changed by these digests.
  for (auto& l : e.decoded.resources) l.digest = ResourceDigest(l.resource);
  e.resolved.resize(e.decoded.resources.size());
  e.text = std::move(text);
  if (it != files_.end()) index_->Remove(it->second.decoded.resources);
  Entry& placed = files_[file] = std::move(e);  // the resources keep their addresses: the index points into them
  index_->Add(placed.decoded.resources);
  return placed.decoded;
}

void DecodeCache::AppendResolved(const std::string& file, const std::map<std::string, const Namespace*>& namespaces,
                                 std::vector<Located>* out) {
  Entry& e = files_.at(file);
  for (size_t i = 0; i < e.decoded.resources.size(); ++i) {
    Located& l = out->emplace_back(e.decoded.resources[i]);  // the resource is shared, not copied
    auto want = NamespaceChange(l, namespaces);
    if (!want) continue;  // as decoded: the decoded digest holds
    auto& memo = e.resolved[i];
    if (!memo || memo->settings != *want) {
      // Resolved once per distinct setting and kept: the next reload shares this copy, as the snapshot does.
      SharedResource resolved = l.resource;
      SetInherited(*want, resolved.Mutable()->mutable_workload());
      memo = Resolved{*want, ResourceDigest(*resolved), std::move(resolved)};
    }
    l.resource = memo->resource;
    l.digest = memo->digest;
  }
}

bool DecodeCache::NoticesChanged(const std::vector<Error>& notices) {
  std::string sig;
  for (const auto& n : notices) sig += n.file + ":" + std::to_string(n.line) + ":" + n.reason + "\n";
  if (sig == notices_) return false;
  notices_ = std::move(sig);
  return true;
}

void DecodeCache::Retain(const std::vector<std::string>& present) {
  std::set<std::string> keep(present.begin(), present.end());
  for (auto it = files_.begin(); it != files_.end();) {
    if (keep.count(it->first)) {
      ++it;
      continue;
    }
    index_->Remove(it->second.decoded.resources);
    it = files_.erase(it);
  }
}

Result LoadDir(const std::string& dir, const Limits& limits, DecodeCache* cache) {
  Result out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    out.errors.push_back({dir, 0, std::string("cannot open manifest directory: ") + std::strerror(errno)});
    return out;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.empty() || n[0] == '.') continue;  // hidden files, editor swap files, ConfigMap ..data
    auto ends = [&](const char* suf) {
      size_t l = std::strlen(suf);
      return n.size() > l && n.compare(n.size() - l, l, suf) == 0;
    };
    if (ends(".yaml") || ends(".yml")) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());  // deterministic error order
  std::vector<std::string> paths;
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    std::string err;
    auto text = zm::ctrl::ReadFile(path, &err, 4 << 20);
    if (!text) {
      // A file deleted between readdir and open is simply gone.
      if (errno != ENOENT) out.errors.push_back({path, 0, err});
      continue;
    }
    if (cache) {
      const Result& decoded = cache->Decode(path, std::move(*text), limits);
      out.grants.insert(out.grants.end(), decoded.grants.begin(), decoded.grants.end());
      out.namespaces.insert(out.namespaces.end(), decoded.namespaces.begin(), decoded.namespaces.end());
      out.errors.insert(out.errors.end(), decoded.errors.begin(), decoded.errors.end());
      paths.push_back(path);
    } else {
      DecodeText(*text, path, limits, &out);
    }
  }
  // Workloads are resolved once every Namespace is known: one in a later file decides for workloads read before it.
  if (cache) {
    cache->Retain(paths);
    auto namespaces = IndexNamespaces(out.namespaces);
    for (const auto& path : paths) cache->AppendResolved(path, namespaces, &out.resources);
  } else {
    ApplyNamespaces(&out);
  }
  if (cache) {
    // The same errors as CheckSet(&out), from indexes that only the changed files updated.
    const SetIndex& index = cache->index();
    index.AppendErrors(&out.errors);
    ServiceLookup find = [&](const std::string& ns, const std::string& name) { return index.FindService(ns, name); };
    CheckSetRest(&out, &find);
  } else {
    CheckSet(&out);
  }
  if (cache == nullptr || cache->NoticesChanged(out.notices)) {
    for (const auto& n : out.notices)
      log::Warn("manifest notice", {{"file", n.file}, {"line", n.line}, {"reason", n.reason}});
  }
  return out;
}

}  // namespace zm::manifest
