#include "controller/manifest/reference_grant.h"

#include <map>

namespace zm::manifest {
namespace v1 = zeromesh::v1;
namespace {

constexpr size_t kMaxEntries = 16;  // Gateway API's maxItems for from and to

bool IsCore(const std::string& group) {
  return group.empty() || group == "core";
}

// A required list of 1..16 maps.
bool CheckList(YamlReader& r, const YAML::Node& spec, const char* key) {
  YAML::Node list = spec[key];
  if (!list || list.IsNull()) {
    r.Fail(spec, std::string("missing required field 'spec.") + key + "'");
    return false;
  }
  if (!list.IsSequence() || list.size() == 0 || list.size() > kMaxEntries) {
    r.Fail(list, std::string("'spec.") + key + "' must be a list of 1 to 16 entries");
    return false;
  }
  return true;
}

}  // namespace

void DecodeReferenceGrant(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                          ReferenceGrant* out) {
  out->name = name;
  out->ns = ns;
  if (!r.CheckMap(spec, "spec", {"from", "to"})) return;
  if (CheckList(r, spec, "from")) {
    YAML::Node from = spec["from"];
    for (size_t i = 0; i < from.size(); ++i) {
      std::string path = "spec.from[" + std::to_string(i) + "]";
      if (!r.CheckMap(from[i], path, {"group", "kind", "namespace"})) continue;
      ReferenceGrant::From f;
      f.group = r.Str(from[i], "group", path, true).value_or("");
      f.kind = r.Str(from[i], "kind", path, true).value_or("");
      if (auto n = r.Str(from[i], "namespace", path, true)) {
        if (std::string why = CheckNamespace(*n); !why.empty())
          r.Fail(from[i]["namespace"], "'" + path + ".namespace': " + why);
        f.ns = *n;
      }
      if (f.kind.empty() && from[i]["kind"]) r.Fail(from[i]["kind"], "'" + path + ".kind' must not be empty");
      out->from.push_back(std::move(f));
    }
  }
  if (CheckList(r, spec, "to")) {
    YAML::Node to = spec["to"];
    for (size_t i = 0; i < to.size(); ++i) {
      std::string path = "spec.to[" + std::to_string(i) + "]";
      if (!r.CheckMap(to[i], path, {"group", "kind", "name"})) continue;
      ReferenceGrant::To t;
      t.group = r.Str(to[i], "group", path, true).value_or("");
      t.kind = r.Str(to[i], "kind", path, true).value_or("");
      if (auto n = r.Str(to[i], "name", path, false)) {
        if (std::string why = CheckName(*n); !why.empty()) r.Fail(to[i]["name"], "'" + path + ".name': " + why);
        t.name = *n;
      }
      if (t.kind.empty() && to[i]["kind"]) r.Fail(to[i]["kind"], "'" + path + ".kind' must not be empty");
      out->to.push_back(std::move(t));
    }
  }
}

bool BackendRefPermitted(const std::vector<ReferenceGrant>& grants, const std::string& route_ns,
                         const std::string& backend_ns, const std::string& backend_name,
                         const std::string& route_kind) {
  if (backend_ns.empty() || backend_ns == route_ns) return true;
  for (const auto& g : grants) {
    if (g.ns != backend_ns) continue;  // only the referent's namespace can consent
    bool from = false, to = false;
    for (const auto& f : g.from) from = from || (f.group == kGatewayGroup && f.kind == route_kind && f.ns == route_ns);
    for (const auto& t : g.to) {
      to = to || (IsCore(t.group) && t.kind == "Service" && (t.name.empty() || t.name == backend_name));
    }
    if (from && to) return true;
  }
  return false;
}

namespace {

std::string RefString(const v1::BackendRef& b) {
  return b.namespace_() + "/" + b.name() + ":" + std::to_string(b.port());
}

// Removes the not-permitted entries of `refs`, appending them to *dropped.
void DropRefs(const std::vector<ReferenceGrant>& grants, const std::string& route_ns, const std::string& kind,
              google::protobuf::RepeatedPtrField<v1::BackendRef>* refs, std::vector<std::string>* dropped) {
  for (int i = 0; i < refs->size();) {
    const auto& b = refs->Get(i);
    if (BackendRefPermitted(grants, route_ns, b.namespace_(), b.name(), kind)) {
      ++i;
      continue;
    }
    dropped->push_back(RefString(b));
    refs->DeleteSubrange(i, 1);
  }
}

void DropMirrors(const std::vector<ReferenceGrant>& grants, const std::string& route_ns, const std::string& kind,
                 google::protobuf::RepeatedPtrField<v1::HttpRouteFilter>* filters, std::vector<std::string>* dropped) {
  for (int i = 0; i < filters->size();) {
    const auto& f = filters->Get(i);
    if (!f.has_request_mirror() || BackendRefPermitted(grants, route_ns, f.request_mirror().backend().namespace_(),
                                                       f.request_mirror().backend().name(), kind)) {
      ++i;
      continue;
    }
    dropped->push_back(RefString(f.request_mirror().backend()));
    filters->DeleteSubrange(i, 1);
  }
}

template <typename Route>
std::vector<std::string> DropL7(const std::vector<ReferenceGrant>& grants, const std::string& kind, Route* route) {
  std::vector<std::string> dropped;
  for (auto& rule : *route->mutable_rules()) {
    DropRefs(grants, route->namespace_(), kind, rule.mutable_backend_refs(), &dropped);
    DropMirrors(grants, route->namespace_(), kind, rule.mutable_filters(), &dropped);
  }
  return dropped;
}

}  // namespace

std::vector<std::string> DropUnpermittedBackends(const std::vector<ReferenceGrant>& grants, v1::TcpRoute* route) {
  std::vector<std::string> dropped;
  for (auto& rule : *route->mutable_rules()) {
    DropRefs(grants, route->namespace_(), "TCPRoute", rule.mutable_backend_refs(), &dropped);
  }
  return dropped;
}

std::vector<std::string> DropUnpermittedBackends(const std::vector<ReferenceGrant>& grants, v1::HttpRoute* route) {
  return DropL7(grants, "HTTPRoute", route);
}

std::vector<std::string> DropUnpermittedBackends(const std::vector<ReferenceGrant>& grants, v1::GrpcRoute* route) {
  return DropL7(grants, "GRPCRoute", route);
}

std::string NotPermittedMessage(const std::string& route_ns, const std::vector<std::string>& refs,
                                const std::string& route_kind) {
  std::string list;
  for (const auto& r : refs) list += (list.empty() ? "" : ", ") + r;
  return "backendRef " + list + ": not permitted (no ReferenceGrant in the backend's namespace lets " + route_kind +
         "s from " + "namespace " + route_ns + " refer to that Service); left out of the route's backends";
}

void ApplyReferenceGrants(Result* r) {
  std::map<std::string, const ReferenceGrant*> seen;
  for (const auto& g : r->grants) {
    if (auto [it, fresh] = seen.emplace(g.ns + "/" + g.name, &g); !fresh) {
      r->errors.push_back({g.file, g.line,
                           "duplicate name: ReferenceGrant/" + g.ns + "/" + g.name + " is already defined at " +
                               it->second->file + ":" + std::to_string(it->second->line)});
    }
  }
  for (auto& l : r->resources) {
    std::vector<std::string> dropped;
    std::string kind, self, ns;
    if (l.resource->has_tcp_route()) {
      auto* route = l.resource.Mutable()->mutable_tcp_route();
      dropped = DropUnpermittedBackends(r->grants, route);
      kind = "TCPRoute", ns = route->namespace_(), self = route->name();
    } else if (l.resource->has_http_route()) {
      auto* route = l.resource.Mutable()->mutable_http_route();
      dropped = DropUnpermittedBackends(r->grants, route);
      kind = "HTTPRoute", ns = route->namespace_(), self = route->name();
    } else if (l.resource->has_grpc_route()) {
      auto* route = l.resource.Mutable()->mutable_grpc_route();
      dropped = DropUnpermittedBackends(r->grants, route);
      kind = "GRPCRoute", ns = route->namespace_(), self = route->name();
    }
    if (dropped.empty()) continue;
    l.digest.reset();  // the resource changed
    r->notices.push_back(
        {l.file, l.line, kind + " " + ns + "/" + self + ": " + NotPermittedMessage(ns, dropped, kind)});
  }
}

}  // namespace zm::manifest
