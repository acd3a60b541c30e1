// Kubernetes objects as the controller's reflectors hand them to k8s::Translate (controller/k8s/translate.h): Pods,
// Namespaces, Services, EndpointSlices and the CRDs (TrafficPermission, MeshConfig, ServicePolicy, TCPRoute,
// ReferenceGrant). Whoever may create such an object in some namespace (a tenant, a compromised workload's
// ServiceAccount) controls it; the API server only checks what the CRD schemas say, which is far less than the
// manifest decoder does. Then what the controller does with the result: the status patches it writes back
// (Source::WriteStatuses: StatusUpToDate, StatusPatch(..).dump()) and the config it compiles and pushes to agents
// (ctrl::Compile, full and delta pushes, serialized as on the wire and parsed back as an agent does).
// Besides "no crash, no leak, no UB, no uncaught exception (the controller catches none there)", it checks what the
// code promises: workloads and Services only with valid IPv4/IPv6 addresses (the list, when there is one, starting
// with the primary address), every refused object says why, status messages stay
// within 1024 bytes, and every push parses on the agent's side.
// Input: lines, each one object: a kind letter, then the object's JSON as the API server sends it (parsed, trimmed
// and keyed as the reflector does). p Pod, n Namespace, s Service, e EndpointSlice, t TrafficPermission, m MeshConfig,
// y ServicePolicy, r TCPRoute, g ReferenceGrant, h HTTPRoute, c GRPCRoute. An upper-case letter puts the object into
// the previous pass instead: its accepted CRDs become the current pass's "last good" generations, and its config the
// base of the delta push.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controller/config/snapshot.h"
#include "controller/k8s/pod_fields.h"
#include "controller/k8s/reflector.h"
#include "controller/k8s/translate.h"
#include "controller/manifest/yaml_reader.h"

namespace {

using nlohmann::json;
using zm::k8s::Objects;

zm::k8s::Reflector::Cache* CacheFor(Objects* o, char kind) {
  switch (kind) {
    case 'p':
      return &o->pods;
    case 'n':
      return &o->namespaces;
    case 's':
      return &o->services;
    case 'e':
      return &o->endpoint_slices;
    case 't':
      return &o->permissions;
    case 'm':
      return &o->mesh_configs;
    case 'y':
      return &o->service_policies;
    case 'r':
      return &o->tcp_routes;
    case 'g':
      return &o->reference_grants;
    case 'h':
      return &o->http_routes;
    case 'c':
      return &o->grpc_routes;
    default:
      return nullptr;
  }
}

// A valid primary address and, when there is a list, two or more valid distinct ones starting with it.
bool ValidAddresses(const std::string& one, const google::protobuf::RepeatedPtrField<std::string>& many) {
  if (!zm::manifest::CheckIp(one).empty()) return false;
  if (many.empty()) return true;
  if (many.size() < 2 || many[0] != one) return false;
  for (int i = 0; i < many.size(); i++) {
    if (!zm::manifest::CheckIp(many[i]).empty()) return false;
    for (int j = 0; j < i; j++) {
      if (many[i] == many[j]) return false;
    }
  }
  return true;
}

void Check(const zm::k8s::Translation& t) {
  for (const auto& l : t.resources) {
    const zeromesh::v1::Resource& r = *l.resource;
    if (r.has_workload() && !ValidAddresses(r.workload().ip(), r.workload().ips())) std::abort();
    if (r.has_service() && (!ValidAddresses(r.service().vip(), r.service().vips()) || r.service().ports_size() == 0)) {
      std::abort();
    }
    for (const auto& e : r.service().endpoints()) {
      if (!zm::manifest::CheckIp(e.ip()).empty()) std::abort();
    }
  }
  for (const auto& e : t.errors) {
    if (e.reason.empty() || e.file.empty()) std::abort();
  }
  for (const auto& s : t.statuses) {
    if (s.message.size() > 1024) std::abort();
    // What Source::WriteStatuses does with each one (a strict dump: it throws on invalid UTF-8).
    if (!zm::k8s::StatusUpToDate(s)) {
      std::string body = zm::k8s::StatusPatch(s, "2026-03-01T00:00:00Z").dump();
      if (body.empty()) std::abort();
    }
  }
}

// The push as an agent receives it.
void Wire(const zeromesh::v1::ConfigPush& push) {
  std::string bytes;
  if (!push.SerializeToString(&bytes)) std::abort();
  zeromesh::v1::ConfigPush back;
  if (!back.ParseFromString(bytes)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Objects prev, cur;
  bool have_prev = false;
  while (!in.empty()) {
    size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
    if (line.empty()) continue;
    char kind = line[0];
    bool previous = kind >= 'A' && kind <= 'Z';
    zm::k8s::Reflector::Cache* cache =
        CacheFor(previous ? &prev : &cur, previous ? static_cast<char>(kind - 'A' + 'a') : kind);
    if (cache == nullptr) continue;
    json obj = json::parse(line.substr(1), nullptr, /*allow_exceptions=*/false);
    if (!obj.is_object()) continue;  // the reflector takes objects only
    zm::k8s::TrimObject(&obj);
    if (kind == 'p' || kind == 'P') zm::k8s::TrimPod(&obj);  // as the pod reflector stores it
    std::string key = zm::k8s::Reflector::KeyOf(obj);
    (*cache)[key] = std::move(obj);
    have_prev = have_prev || previous;
  }
  zm::manifest::Limits limits;
  zm::ctrl::MeshDefaults defaults;
  zm::k8s::Translation before = zm::k8s::Translate(prev, limits);
  Check(before);
  cur.last_good = &before.accepted;
  zm::k8s::Translation t = zm::k8s::Translate(cur, limits);
  Check(t);

  auto snap = zm::ctrl::Compile(t.resources, defaults);
  Wire(zm::ctrl::MakeFullPush(*snap, "epoch", ""));
  if (have_prev) {
    auto old = zm::ctrl::Compile(before.resources, defaults);
    Wire(zm::ctrl::MakeDeltaPush(*old, *snap, "epoch", ""));
  }
  return 0;
}
