#include "controller/k8s/translate.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/net/ip_addr.h"
#include "controller/k8s/probe_ports.h"
#include "controller/manifest/app_protocol.h"
#include "controller/manifest/reference_grant.h"
#include "controller/manifest/traffic_decode.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::k8s {
namespace v1 = zeromesh::v1;
using nlohmann::json;

namespace {

const json& Field(const json& j, std::initializer_list<const char*> path) {
  static const json kNull;
  const json* cur = &j;
  for (const char* p : path) {
    if (!cur->is_object()) return kNull;
    auto it = cur->find(p);
    if (it == cur->end()) return kNull;
    cur = &*it;
  }
  return *cur;
}

std::string Str(const json& j, std::initializer_list<const char*> path) {
  const json& v = Field(j, path);
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::map<std::string, std::string> StrMap(const json& j) {
  std::map<std::string, std::string> out;
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// The record of the mode label a Namespace was last accepted with (same uid), its mode in *mode; null if none.
const json* LastGoodMode(const Objects& objs, const std::string& key, const json& obj, v1::Mode* mode) {
  if (objs.last_good == nullptr) return nullptr;
  auto it = objs.last_good->find(key);
  if (it == objs.last_good->end() || Str(it->second, {"metadata", "uid"}) != Str(obj, {"metadata", "uid"})) {
    return nullptr;
  }
  return manifest::ParseModeLabel(Str(it->second, {"metadata", "labels", kModeLabel}), mode).empty() ? &it->second
                                                                                                     : nullptr;
}

// What each Namespace decides for its pods (controller/manifest/namespaces.h), by name. zeromesh.io/mesh enrolls when
// it says enabled (any other value: not enrolled, as before). A zeromesh.io/mode that is neither STRICT nor PERMISSIVE
// is reported and the mode the namespace was last accepted with (same uid) stays, as for an invalid CRD update.
std::map<std::string, manifest::Namespace> NamespaceSettings(const Objects& objs, Translation* t) {
  std::map<std::string, manifest::Namespace> out;
  for (const auto& [key, obj] : objs.namespaces) {
    manifest::Namespace ns;
    ns.name = Str(obj, {"metadata", "name"});
    ns.file = std::string(manifest::kNamespaceKind) + "/" + key;
    const json& labels = Field(obj, {"metadata", "labels"});
    if (const json& mesh = Field(labels, {kMeshLabel}); mesh.is_string()) ns.enrolled = mesh == kMeshEnabled;
    if (const json& mode = Field(labels, {kModeLabel}); mode.is_string()) {
      std::string why = manifest::ParseModeLabel(mode.get<std::string>(), &ns.mode);
      if (why.empty()) {
        t->accepted[ns.file] = {
            {"metadata", {{"uid", Field(obj, {"metadata", "uid"})}, {"labels", {{kModeLabel, mode}}}}}};
      } else if (const json* prev = LastGoodMode(objs, ns.file, obj, &ns.mode)) {
        t->accepted[ns.file] = *prev;
        t->errors.push_back({ns.file, 0, why + "; the last accepted mode (" + v1::Mode_Name(ns.mode) + ") stays"});
      } else {
        t->errors.push_back({ns.file, 0, why + "; the label is ignored"});
      }
    }
    out[ns.name] = std::move(ns);
  }
  return out;
}

// A valid address in canonical text (one address, one string: the snapshot matches endpoints to workloads by it),
// else "".
std::string CanonicalAddress(const json& j) {
  if (!j.is_string()) return "";
  auto ip = net::IpAddr::Parse(j.get_ref<const std::string&>());
  return ip ? ip->ToString() : "";
}

// Appends `j`'s address to *out unless it is invalid or already there.
void AddAddress(const json& j, std::vector<std::string>* out) {
  if (std::string ip = CanonicalAddress(j); !ip.empty() && std::find(out->begin(), out->end(), ip) == out->end()) {
    out->push_back(std::move(ip));
  }
}

// status.podIP first, then the rest of status.podIPs (one per family in a dual-stack cluster): valid, distinct.
std::vector<std::string> PodAddresses(const json& pod) {
  std::vector<std::string> out;
  AddAddress(Field(pod, {"status", "podIP"}), &out);
  if (const json& ips = Field(pod, {"status", "podIPs"}); ips.is_array()) {
    for (const auto& e : ips) AddAddress(Field(e, {"ip"}), &out);
  }
  return out;
}

void AddWorkloads(const Objects& objs, Translation* t) {
  std::set<std::string> taken;
  const auto namespaces = NamespaceSettings(objs, t);
  for (const auto& [key, pod] : objs.pods) {
    std::string ns = Str(pod, {"metadata", "namespace"});
    auto labels = StrMap(Field(pod, {"metadata", "labels"}));
    // Pods outside the mesh are listed too (enrolled=false): an agent holds the traffic of a local pod it knows
    // nothing about (fail closed while a new pod's object is on its way), so it must be told which ones go direct.
    std::string node = Str(pod, {"spec", "nodeName"});
    if (Str(pod, {"status", "phase"}) != "Running" || node.empty()) continue;
    if (Field(pod, {"spec", "hostNetwork"}) == true) continue;  // the node's IP, not the pod's own
    // A stale pod still holding a reused IP loses that address to the pod listed first; with none left, it is not
    // a workload.
    std::vector<std::string> ips = PodAddresses(pod);
    std::erase_if(ips, [&](const std::string& ip) { return !taken.insert(ip).second; });
    if (ips.empty()) continue;
    manifest::Located l;
    l.file = "Pod" + std::string("/") + key;
    auto* w = l.resource.Mutable()->mutable_workload();
    w->set_name(Str(pod, {"metadata", "name"}));
    w->set_namespace_(ns);
    std::string sa = Str(pod, {"spec", "serviceAccountName"});
    w->set_service_account(sa.empty() ? "default" : sa);
    w->set_node(node);
    w->set_ip(ips[0]);
    if (ips.size() > 1) {
      for (const auto& ip : ips) w->add_ips(ip);
    }
    // The pod's own labels win over its namespace's, as in universal mode a workload's spec does.
    auto own = labels.find(kMeshLabel);
    w->set_enrolled(own != labels.end() && own->second == kMeshEnabled);
    bool own_mode = false;
    if (auto m = labels.find(kModeLabel); m != labels.end()) {
      v1::Mode mode = v1::MODE_UNSPECIFIED;
      std::string why = manifest::ParseModeLabel(m->second, &mode);
      own_mode = why.empty();
      w->set_mode(mode);
      if (!own_mode) t->errors.push_back({"Pod/" + key, 0, why + "; the namespace's mode applies"});
    }
    auto in = namespaces.find(ns);
    manifest::ResolveWorkload(own == labels.end(), !own_mode, in == namespaces.end() ? nullptr : &in->second,
                              /*enrolled_default=*/false, w);
    bool enrolled = w->enrolled();
    for (uint32_t p : ProbePorts(pod)) w->add_probe_ports(p);
    for (const auto& [k, v] : labels) (*w->mutable_labels())[k] = v;
    t->resources.push_back(std::move(l));
    t->workloads++;
    if (enrolled) t->enrolled++;
  }
}

// AF_INET / AF_INET6 for an IPv4 / IPv6 EndpointSlice, 0 for any other addressType (FQDN).
int SliceFamily(const json& slice) {
  std::string type = Str(slice, {"addressType"});
  return type == "IPv4" ? AF_INET : type == "IPv6" ? AF_INET6 : 0;
}

// spec.clusterIP first, then the rest of spec.clusterIPs (a dual-stack Service's other family): valid, distinct.
std::vector<std::string> ClusterIps(const json& svc) {
  std::vector<std::string> out;
  AddAddress(Field(svc, {"spec", "clusterIP"}), &out);
  if (const json& ips = Field(svc, {"spec", "clusterIPs"}); ips.is_array()) {
    for (const auto& e : ips) AddAddress(e, &out);
  }
  return out;
}

void AddServices(const Objects& objs, Translation* t) {
  // EndpointSlices by "<namespace>/<service>".
  std::map<std::string, std::vector<const json*>> slices;
  for (const auto& [key, slice] : objs.endpoint_slices) {
    if (SliceFamily(slice) == 0) continue;  // FQDN slices: not addresses the mesh can capture
    std::string svc = Str(slice, {"metadata", "labels", "kubernetes.io/service-name"});
    if (!svc.empty()) slices[Str(slice, {"metadata", "namespace"}) + "/" + svc].push_back(&slice);
  }
  for (const auto& [key, svc] : objs.services) {
    std::vector<std::string> vips = ClusterIps(svc);
    if (vips.empty()) continue;  // headless ("None") or no cluster IP yet
    const auto& my_slices = slices[key];
    manifest::Located l;
    l.file = "Service/" + key;
    auto* s = l.resource.Mutable()->mutable_service();
    s->set_name(Str(svc, {"metadata", "name"}));
    s->set_namespace_(Str(svc, {"metadata", "namespace"}));
    s->set_vip(vips[0]);
    if (vips.size() > 1) {
      for (const auto& vip : vips) s->add_vips(vip);
    }
    const json& ports = Field(svc, {"spec", "ports"});
    if (!ports.is_array()) continue;
    for (const auto& p : ports) {
      std::string proto = Str(p, {"protocol"});
      if (!proto.empty() && proto != "TCP") continue;
      const json& port = Field(p, {"port"});
      if (!port.is_number_integer()) continue;
      std::string name = Str(p, {"name"});
      uint32_t target = port.get<uint32_t>();
      if (const json& tp = Field(p, {"targetPort"}); tp.is_number_integer()) target = tp.get<uint32_t>();
      // A named targetPort resolves per pod; the EndpointSlice carries the resolved number under the port's name.
      for (const json* slice : my_slices) {
        const json& sp = Field(*slice, {"ports"});
        if (!sp.is_array()) continue;
        for (const auto& e : sp) {
          if (Str(e, {"name"}) == name && Field(e, {"port"}).is_number_integer()) target = e["port"].get<uint32_t>();
        }
      }
      auto* out = s->add_ports();
      out->set_name(name);
      out->set_port(port.get<uint32_t>());
      out->set_target_port(target);
      out->set_protocol("TCP");
      // An appProtocol the API server accepted but the mesh would not is dropped (the port stays L4).
      if (std::string app = Str(p, {"appProtocol"}); manifest::CheckAppProtocol(app).empty()) {
        out->set_app_protocol(app);
      }
      out->set_resolved_protocol(manifest::ResolveAppProtocol(out->app_protocol(), name));
    }
    if (s->ports_size() == 0) continue;  // UDP-only services are not meshed
    std::set<std::string> seen;
    // A dual-stack Service has a slice per family, so a dual-stack pod is one endpoint per address.
    for (const json* slice : my_slices) {
      const int family = SliceFamily(*slice);
      const json& eps = Field(*slice, {"endpoints"});
      if (!eps.is_array()) continue;
      for (const auto& e : eps) {
        if (Field(e, {"conditions", "ready"}) == false) continue;
        const json& addrs = Field(e, {"addresses"});
        if (!addrs.is_array()) continue;
        for (const auto& a : addrs) {
          std::string ip = CanonicalAddress(a);
          // An address of the other family than the slice says is not one the API server would have accepted.
          if (ip.empty() || net::IpAddr::Parse(ip)->family() != family || !seen.insert(ip).second) continue;
          auto* ep = s->add_endpoints();
          ep->set_ip(std::move(ip));
          ep->set_node(Str(e, {"nodeName"}));
        }
      }
    }
    t->resources.push_back(std::move(l));
    t->services++;
  }
}

// Decodes a CRD object with the manifest decoder (JSON is YAML), so both modes accept exactly the same specs.
// "" when it decoded without error, else the reasons.
std::string DecodeObject(const json& obj, const std::string& kind, const manifest::Limits& limits,
                         manifest::Result* r) {
  const char* api = kind == "TCPRoute"                           ? manifest::kGatewayApiVersion
                    : kind == "HTTPRoute" || kind == "GRPCRoute" ? manifest::kGatewayV1ApiVersion
                    : kind == "ReferenceGrant"                   ? manifest::kReferenceGrantApiVersion
                                                                 : manifest::kApiVersion;
  json doc = {{"apiVersion", api}, {"kind", kind}};
  json meta = {{"name", Str(obj, {"metadata", "name"})}};
  if (std::string ns = Str(obj, {"metadata", "namespace"}); !ns.empty()) meta["namespace"] = ns;
  if (const json& labels = Field(obj, {"metadata", "labels"}); labels.is_object()) meta["labels"] = labels;
  doc["metadata"] = meta;
  if (const json& spec = Field(obj, {"spec"}); !spec.is_null()) doc["spec"] = spec;
  manifest::DecodeText(doc.dump(2), kind + "/" + Reflector::KeyOf(obj), limits, r);
  std::string reasons;
  for (const auto& e : r->errors) reasons += (reasons.empty() ? "" : "; ") + e.reason;
  return reasons;
}

bool DecodeCrd(const json& obj, const std::string& kind, const manifest::Limits& limits, manifest::Located* out,
               std::string* reasons) {
  manifest::Result r;
  std::string where = kind + "/" + Reflector::KeyOf(obj);
  *reasons = DecodeObject(obj, kind, limits, &r);
  if (!r.ok() || r.resources.size() != 1) {
    if (reasons->empty()) *reasons = "the object did not decode to one resource";
    return false;
  }
  *out = std::move(r.resources[0]);
  out->file = where;
  out->line = 0;
  return true;
}

CrdStatus MakeStatus(const json& obj, const char* resource) {
  CrdStatus s;
  s.resource = resource;
  s.ns = Str(obj, {"metadata", "namespace"});
  s.name = Str(obj, {"metadata", "name"});
  const json& g = Field(obj, {"metadata", "generation"});
  s.generation = g.is_number_integer() ? g.get<int64_t>() : 0;
  s.current_status = Field(obj, {"status"});
  return s;
}

// The previous accepted version of `obj` (same uid), decoded; false if there is none.
bool LastGoodOf(const Objects& objs, const std::string& kind, const json& obj, const manifest::Limits& limits,
                manifest::Located* out, json* prev) {
  if (objs.last_good == nullptr) return false;
  auto it = objs.last_good->find(kind + "/" + Reflector::KeyOf(obj));
  if (it == objs.last_good->end() || Str(it->second, {"metadata", "uid"}) != Str(obj, {"metadata", "uid"}))
    return false;
  std::string ignored;
  if (!DecodeCrd(it->second, kind, limits, out, &ignored)) return false;
  *prev = it->second;
  return true;
}

// A ServicePolicy on an HTTPRoute / GRPCRoute that is not there, or on a rule (sectionName) the route does not have,
// is accepted (it applies to no request until they exist); its status says so.
std::string RouteTargetWarning(const Objects& objs, const v1::ServicePolicy& p) {
  if (!p.has_target_route()) return "";
  const auto& target = p.target_route();
  const Reflector::Cache& cache = target.kind() == "GRPCRoute" ? objs.grpc_routes : objs.http_routes;
  const std::string route = target.kind() + " " + p.namespace_() + "/" + target.name();
  auto it = cache.find(p.namespace_() + "/" + target.name());
  if (it == cache.end())
    return "; warning: there is no " + route + " (the policy applies to no request until there is)";
  if (target.section_name().empty()) return "";
  if (const json& rules = Field(it->second, {"spec", "rules"}); rules.is_array()) {
    for (const auto& rule : rules) {
      if (Str(rule, {"name"}) == target.section_name()) return "";
    }
  }
  return "; warning: " + route + " has no rule named '" + target.section_name() +
         "' (the policy applies to no request until one exists)";
}

void AddCrds(const Objects& objs, const manifest::Limits& limits, Translation* t) {
  // Returns whether a resource was added (the object itself, or its last good generation).
  auto verdict = [&](const json& obj, const char* resource, const std::string& kind, bool ok, std::string message,
                     manifest::Located* l) {
    CrdStatus s = MakeStatus(obj, resource ? resource : "");
    s.accepted = ok;
    s.reason = ok ? "Accepted" : "Invalid";
    s.message = ok ? "the mesh applies this " + kind : std::move(message);
    const std::string key = kind + "/" + Reflector::KeyOf(obj);
    bool added = ok;
    json prev;
    if (!ok && l != nullptr && LastGoodOf(objs, kind, obj, limits, l, &prev)) {
      const json& g = Field(prev, {"metadata", "generation"});
      s.message += "; generation " + (g.is_number_integer() ? std::to_string(g.get<int64_t>()) : std::string("?")) +
                   " (the last accepted) stays in force";
      t->accepted[key] = std::move(prev);
      added = true;
    }
    if (s.message.size() > 1024) s.message = s.message.substr(0, 1021) + "...";
    if (ok) t->accepted[key] = obj;
    if (added) t->resources.push_back(std::move(*l));
    if (!ok) t->errors.push_back({key, 0, s.message});
    if (resource) t->statuses.push_back(std::move(s));
    return added;
  };
  for (const auto& [key, obj] : objs.permissions) {
    manifest::Located l;
    std::string reasons;
    bool ok = DecodeCrd(obj, "TrafficPermission", limits, &l, &reasons);
    if (verdict(obj, "trafficpermissions", "TrafficPermission", ok, reasons, &l)) t->permissions++;
  }
  for (const auto& [key, obj] : objs.service_policies) {
    manifest::Located l;
    std::string reasons;
    bool ok = DecodeCrd(obj, "ServicePolicy", limits, &l, &reasons);
    std::string warning = ok ? RouteTargetWarning(objs, l.resource->service_policy()) : "";
    verdict(obj, "servicepolicies", "ServicePolicy", ok, reasons, &l);
    if (!warning.empty()) t->statuses.back().message += warning;
  }
  // ReferenceGrants have no status; an invalid one grants nothing (fail closed) and is reported.
  std::vector<manifest::ReferenceGrant> grants;
  for (const auto& [key, obj] : objs.reference_grants) {
    manifest::Result r;
    std::string reasons = DecodeObject(obj, "ReferenceGrant", limits, &r);
    if (r.ok() && r.grants.size() == 1) {
      grants.push_back(std::move(r.grants[0]));
    } else {
      t->errors.push_back({"ReferenceGrant/" + key, 0, reasons.empty() ? "not a ReferenceGrant" : reasons});
    }
  }
  // Gateway API routes: status only for the Service parents (GAMMA); a Gateway parent's status belongs to that
  // Gateway's controller. Whatever generation is in force loses the backendRefs no grant permits (a removed grant
  // revokes at once).
  auto routes = [&](const Reflector::Cache& cache, const std::string& kind, const char* resource, const char* prefix,
                    auto drop) {
    for (const auto& [key, obj] : cache) {
      manifest::Located l;
      std::string reasons;
      bool ok = DecodeCrd(obj, kind, limits, &l, &reasons);
      json services = json::array();
      if (const json& refs = Field(obj, {"spec", "parentRefs"}); refs.is_array()) {
        for (const auto& ref : refs) {
          std::string group = Str(ref, {"group"});
          if (Str(ref, {"kind"}) == "Service" && (group.empty() || group == "core")) services.push_back(ref);
        }
      }
      bool added = verdict(obj, services.empty() ? nullptr : resource, kind, ok, reasons, &l);
      std::vector<std::string> dropped;
      if (added) dropped = drop(t->resources.back().resource.Mutable());
      if (!services.empty()) {
        t->statuses.back().api_prefix = prefix;
        t->statuses.back().parent_refs = std::move(services);
        t->statuses.back().route_kind = kind;
        if (ok) t->statuses.back().refs_not_permitted = std::move(dropped);
      }
    }
  };
  routes(objs.tcp_routes, "TCPRoute", "tcproutes", kGatewayApiPrefix,
         [&](v1::Resource* r) { return manifest::DropUnpermittedBackends(grants, r->mutable_tcp_route()); });
  routes(objs.http_routes, "HTTPRoute", "httproutes", kGatewayV1Prefix,
         [&](v1::Resource* r) { return manifest::DropUnpermittedBackends(grants, r->mutable_http_route()); });
  routes(objs.grpc_routes, "GRPCRoute", "grpcroutes", kGatewayV1Prefix,
         [&](v1::Resource* r) { return manifest::DropUnpermittedBackends(grants, r->mutable_grpc_route()); });
  // One MeshConfig applies: the oldest (then by name); any other is refused with a pointer to it.
  std::vector<const json*> configs;
  for (const auto& [key, obj] : objs.mesh_configs) configs.push_back(&obj);
  std::stable_sort(configs.begin(), configs.end(), [](const json* a, const json* b) {
    return Str(*a, {"metadata", "creationTimestamp"}) < Str(*b, {"metadata", "creationTimestamp"});
  });
  std::string in_effect;
  for (const json* obj : configs) {
    manifest::Located l;
    std::string reasons;
    if (!in_effect.empty()) {
      reasons = "only one MeshConfig is allowed: '" + in_effect + "' is in effect";
      verdict(*obj, "meshconfigs", "MeshConfig", false, reasons, nullptr);
      continue;
    }
    bool ok = DecodeCrd(*obj, "MeshConfig", limits, &l, &reasons);
    if (verdict(*obj, "meshconfigs", "MeshConfig", ok, reasons, &l)) in_effect = Str(*obj, {"metadata", "name"});
  }
}

const json* FindCondition(const json& status, const char* type) {
  const json& conds = Field(status, {"conditions"});
  if (!conds.is_array()) return nullptr;
  for (const auto& c : conds) {
    if (Str(c, {"type"}) == type) return &c;
  }
  return nullptr;
}

const json* AcceptedCondition(const json& status) {
  return FindCondition(status, "Accepted");
}

// Gateway API route status: other controllers' entries kept, ours (one per Service parent) rebuilt, each condition
// keeping its lastTransitionTime while its status does not change.
json RouteParents(const CrdStatus& s, const std::string& now) {
  json parents = json::array();
  const json& current = Field(s.current_status, {"parents"});
  if (current.is_array()) {
    for (const auto& p : current) {
      if (Str(p, {"controllerName"}) != kGatewayControllerName) parents.push_back(p);
    }
  }
  for (const auto& ref : s.parent_refs) {
    // Each condition keeps its lastTransitionTime from our entry for this parent while its status holds.
    auto make = [&](const char* type, bool ok, const std::string& reason, const std::string& message) {
      std::string status = ok ? "True" : "False";
      std::string since = now;
      if (current.is_array()) {
        for (const auto& p : current) {
          if (Str(p, {"controllerName"}) != kGatewayControllerName || Field(p, {"parentRef"}) != ref) continue;
          if (const json* c = FindCondition(p, type); c && Str(*c, {"status"}) == status) {
            since = Str(*c, {"lastTransitionTime"});
          }
        }
      }
      return json{{"type", type},
                  {"status", status},
                  {"reason", reason},
                  {"message", message},
                  {"observedGeneration", s.generation},
                  {"lastTransitionTime", since}};
    };
    json conds = json::array({make("Accepted", s.accepted, s.accepted ? "Accepted" : "UnsupportedValue", s.message)});
    if (s.accepted) {
      bool resolved = s.refs_not_permitted.empty();
      conds.push_back(make("ResolvedRefs", resolved, resolved ? "ResolvedRefs" : "RefNotPermitted",
                           resolved ? "every backendRef is permitted"
                                    : manifest::NotPermittedMessage(s.ns, s.refs_not_permitted, s.route_kind)));
    }
    parents.push_back({{"parentRef", ref}, {"controllerName", kGatewayControllerName}, {"conditions", conds}});
  }
  return parents;
}

}  // namespace

Translation Translate(const Objects& objs, const manifest::Limits& limits) {
  Translation t;
  AddWorkloads(objs, &t);
  AddServices(objs, &t);
  AddCrds(objs, limits, &t);
  return t;
}

bool StatusUpToDate(const CrdStatus& s) {
  if (!s.parent_refs.is_null()) return RouteParents(s, "") == Field(s.current_status, {"parents"});
  const json* c = AcceptedCondition(s.current_status);
  return c != nullptr && Str(*c, {"status"}) == (s.accepted ? "True" : "False") && Str(*c, {"reason"}) == s.reason &&
         Str(*c, {"message"}) == s.message && Field(*c, {"observedGeneration"}) == s.generation &&
         Field(s.current_status, {"observedGeneration"}) == s.generation;
}

json StatusPatch(const CrdStatus& s, const std::string& now_rfc3339) {
  if (!s.parent_refs.is_null()) return {{"status", {{"parents", RouteParents(s, now_rfc3339)}}}};
  std::string status = s.accepted ? "True" : "False";
  std::string since = now_rfc3339;
  if (const json* c = AcceptedCondition(s.current_status); c != nullptr && Str(*c, {"status"}) == status) {
    if (std::string t = Str(*c, {"lastTransitionTime"}); !t.empty()) since = t;
  }
  json cond = {{"type", "Accepted"},
               {"status", status},
               {"reason", s.reason},
               {"message", s.message},
               {"observedGeneration", s.generation},
               {"lastTransitionTime", since}};
  return {{"status", {{"observedGeneration", s.generation}, {"conditions", json::array({cond})}}}};
}

}  // namespace zm::k8s
