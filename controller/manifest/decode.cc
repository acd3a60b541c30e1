// YAML document -> zeromesh.v1.Resource, one function per kind.
#include <cstdlib>
#include <set>

#include "common/tls/spiffe.h"
#include "controller/manifest/address_decode.h"
#include "controller/manifest/app_protocol.h"
#include "controller/manifest/l7_route_decode.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/namespaces.h"
#include "controller/manifest/permission_http_decode.h"
#include "controller/manifest/reference_grant.h"
#include "controller/manifest/traffic_decode.h"
#include "controller/manifest/yaml_guard.h"
#include "controller/manifest/yaml_reader.h"
#include "controller/manifest/yaml_sandbox.h"

namespace zm::manifest {
namespace v1 = zeromesh::v1;

constexpr unsigned kYamlParseSeconds = 2;  // a 16 MB manifest parses in well under a second
namespace {

struct Meta {
  std::string name;
  std::string ns;
  std::map<std::string, std::string> labels;
};

std::optional<v1::Mode> ParseMode(YamlReader& r, const YAML::Node& spec, const char* key, const std::string& path) {
  auto s = r.Str(spec, key, path, false);
  if (!s) return std::nullopt;
  if (*s == "STRICT") return v1::STRICT;
  if (*s == "PERMISSIVE") return v1::PERMISSIVE;
  r.Fail(spec[key], "'" + path + "." + key + "' must be STRICT or PERMISSIVE, not '" + *s + "'");
  return std::nullopt;
}

std::optional<v1::Action> ParseAction(YamlReader& r, const YAML::Node& spec, const char* key, const std::string& path,
                                      bool required) {
  auto s = r.Str(spec, key, path, required);
  if (!s) return std::nullopt;
  if (*s == "ALLOW" || *s == "allow") return v1::ALLOW;
  if (*s == "DENY" || *s == "deny") return v1::DENY;
  r.Fail(spec[key], "'" + path + "." + key + "' must be ALLOW or DENY, not '" + *s + "'");
  return std::nullopt;
}

// {matchLabels: {...}, namespace: x}
void DecodeSelector(YamlReader& r, const YAML::Node& n, const std::string& path, bool allow_ns,
                    v1::WorkloadSelector* out) {
  if (allow_ns ? !r.CheckMap(n, path, {"matchLabels", "namespace"}) : !r.CheckMap(n, path, {"matchLabels"})) return;
  for (auto& [k, v] : r.Labels(n, "matchLabels", path)) (*out->mutable_match_labels())[k] = v;
  if (allow_ns) {
    if (auto ns = r.Str(n, "namespace", path, false)) {
      std::string why = CheckNamespace(*ns);
      if (!why.empty()) r.Fail(n["namespace"], "'" + path + ".namespace': " + why);
      out->set_namespace_(*ns);
    }
  }
}

void DecodeWorkload(YamlReader& r, const Meta& m, const YAML::Node& spec, Located* l) {
  if (!r.CheckMap(spec, "spec", {"serviceAccount", "node", "ip", "ips", "enrolled", "mode", "probePorts"})) return;
  v1::Workload* w = l->resource.Mutable()->mutable_workload();
  w->set_name(m.name);
  w->set_namespace_(m.ns);
  for (auto& [k, v] : m.labels) (*w->mutable_labels())[k] = v;
  w->set_service_account(r.Str(spec, "serviceAccount", "spec", false).value_or("default"));
  if (std::string why = CheckServiceAccount(w->service_account()); !why.empty()) {
    r.Fail(spec["serviceAccount"], "'spec.serviceAccount': " + why);
  }
  if (auto node = r.Str(spec, "node", "spec", true)) {
    if (node->empty() || node->size() > 253) r.Fail(spec["node"], "'spec.node' must be a node name");
    w->set_node(*node);
  }
  Addresses ips = DecodeAddresses(r, spec, "ip", "ips", /*required=*/true);
  w->set_ip(ips.primary);
  for (auto& ip : ips.list) w->add_ips(ip);
  // Declaring a workload in the mesh means it is enrolled unless it or its Namespace opts out (what it leaves out,
  // its Namespace decides: ApplyNamespaces, once every file is read).
  auto enrolled = r.Bool(spec, "enrolled", "spec");
  l->inherit_enrolled = !enrolled;
  w->set_enrolled(enrolled.value_or(true));
  auto mode = ParseMode(r, spec, "mode", "spec");
  l->inherit_mode = !mode;
  w->set_mode(mode.value_or(v1::MODE_UNSPECIFIED));
  // The ports the node itself health-checks the workload on (universal mode's kubelet probes).
  if (YAML::Node ports = spec["probePorts"]; ports && !ports.IsNull()) {
    if (!ports.IsSequence()) {
      r.Fail(ports, "'spec.probePorts' must be a list of port numbers");
    } else {
      for (size_t i = 0; i < ports.size(); i++) {
        if (auto v = r.IntNode(ports[i], "spec.probePorts[" + std::to_string(i) + "]", 1, 65535)) {
          w->add_probe_ports(static_cast<uint32_t>(*v));
        }
      }
    }
  }
}

void DecodeService(YamlReader& r, const Meta& m, const YAML::Node& spec, v1::Service* s) {
  if (!r.CheckMap(spec, "spec", {"vip", "vips", "ports", "selector", "endpoints"})) return;
  s->set_name(m.name);
  s->set_namespace_(m.ns);
  Addresses vips = DecodeAddresses(r, spec, "vip", "vips", /*required=*/false);
  s->set_vip(vips.primary);
  for (auto& vip : vips.list) s->add_vips(vip);
  YAML::Node ports = spec["ports"];
  if (!ports || ports.IsNull()) {
    r.Fail(spec, "missing required field 'spec.ports'");
  } else if (!ports.IsSequence() || ports.size() == 0) {
    r.Fail(ports, "'spec.ports' must be a non-empty list");
  } else {
    std::set<uint32_t> seen;
    for (size_t i = 0; i < ports.size(); i++) {
      YAML::Node p = ports[i];
      std::string path = "spec.ports[" + std::to_string(i) + "]";
      if (!r.CheckMap(p, path, {"name", "port", "targetPort", "protocol", "appProtocol"})) continue;
      auto* sp = s->add_ports();
      sp->set_name(r.Str(p, "name", path, false).value_or(""));
      auto port = r.Int(p, "port", path, 1, 65535);
      if (!port && !p["port"]) r.Fail(p, "missing required field '" + path + ".port'");
      sp->set_port(static_cast<uint32_t>(port.value_or(0)));
      sp->set_target_port(static_cast<uint32_t>(r.Int(p, "targetPort", path, 1, 65535).value_or(sp->port())));
      std::string proto = r.Str(p, "protocol", path, false).value_or("TCP");
      if (proto != "TCP") r.Fail(p["protocol"], "'" + path + ".protocol': only TCP is supported");
      sp->set_protocol(proto);
      if (auto app = r.Str(p, "appProtocol", path, false)) {
        if (std::string why = CheckAppProtocol(*app); !why.empty()) {
          r.Fail(p["appProtocol"], "'" + path + ".appProtocol': " + why);
        }
        sp->set_app_protocol(*app);
      }
      sp->set_resolved_protocol(ResolveAppProtocol(sp->app_protocol(), sp->name()));
      if (port && !seen.insert(sp->port()).second) r.Fail(p, "duplicate port " + std::to_string(sp->port()));
    }
  }
  for (auto& [k, v] : r.Labels(spec, "selector", "spec")) (*s->mutable_selector())[k] = v;
  for (auto& ip : r.StrList(spec, "endpoints", "spec", CheckIp)) s->add_endpoints()->set_ip(CanonicalIp(ip));
}

void DecodePermission(YamlReader& r, const Meta& m, const YAML::Node& spec, v1::TrafficPermission* p) {
  if (!r.CheckMap(spec, "spec", {"action", "sources", "destination", "http"})) return;
  p->set_name(m.name);
  p->set_namespace_(m.ns);
  p->set_action(ParseAction(r, spec, "action", "spec", true).value_or(v1::ACTION_UNSPECIFIED));
  YAML::Node src = spec["sources"];
  if (!src || src.IsNull()) {
    r.Fail(spec, "missing required field 'spec.sources'");
  } else if (r.CheckMap(src, "spec.sources", {"identities", "namespaces", "workloadSelectors", "ipBlocks"})) {
    auto* out = p->mutable_sources();
    for (auto& id : r.StrList(src, "identities", "spec.sources", CheckSpiffe)) out->add_identities(id);
    for (auto& ns : r.StrList(src, "namespaces", "spec.sources", CheckNamespace)) out->add_namespaces(ns);
    for (auto& c : r.StrList(src, "ipBlocks", "spec.sources", CheckCidr)) out->add_ip_blocks(CanonicalCidr(c));
    YAML::Node sels = src["workloadSelectors"];
    if (sels && !sels.IsNull()) {
      if (!sels.IsSequence()) {
        r.Fail(sels, "'spec.sources.workloadSelectors' must be a list");
      } else {
        for (size_t i = 0; i < sels.size(); i++) {
          DecodeSelector(r, sels[i], "spec.sources.workloadSelectors[" + std::to_string(i) + "]", true,
                         out->add_workload_selectors());
        }
      }
    }
    if (out->identities_size() + out->namespaces_size() + out->ip_blocks_size() + out->workload_selectors_size() == 0) {
      r.Fail(src, "'spec.sources' lists no source (identities, namespaces, workloadSelectors or ipBlocks)");
    }
  }
  YAML::Node dst = spec["destination"];
  if (dst && !dst.IsNull() && r.CheckMap(dst, "spec.destination", {"selector", "ports"})) {
    auto* out = p->mutable_destination();
    if (YAML::Node sel = dst["selector"]; sel && !sel.IsNull()) {
      DecodeSelector(r, sel, "spec.destination.selector", false, out->mutable_selector());
    }
    YAML::Node ports = dst["ports"];
    if (ports && !ports.IsNull()) {
      if (!ports.IsSequence()) {
        r.Fail(ports, "'spec.destination.ports' must be a list of port numbers");
      } else {
        for (size_t i = 0; i < ports.size(); i++) {
          if (auto v = r.IntNode(ports[i], "spec.destination.ports[" + std::to_string(i) + "]", 1, 65535)) {
            out->add_ports(static_cast<uint32_t>(*v));
          }
        }
      }
    }
  }
  DecodePermissionHttp(r, spec, p);
}

// spec.tracing {samplingPercentage: 0..100 (default 1)}; where spans are sent is each agent's setting.
void DecodeTracing(YamlReader& r, const YAML::Node& t, v1::MeshConfig* c) {
  if (!t) return;
  if (!t.IsMap()) {
    r.Fail(t, "'spec.tracing' must be a map");
    return;
  }
  if (!r.CheckMap(t, "spec.tracing", {"samplingPercentage"})) return;
  double pct = 1.0;
  if (YAML::Node v = t["samplingPercentage"]) {
    std::string text = v.IsScalar() ? v.Scalar() : "";
    char* end = nullptr;
    pct = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(pct >= 0 && pct <= 100)) {
      r.Fail(v, "'spec.tracing.samplingPercentage' must be a number from 0 to 100, not '" + text + "'");
      return;
    }
  }
  c->mutable_tracing()->set_sampling_percentage(pct);
}

void DecodeMeshConfig(YamlReader& r, const YAML::Node& spec, const Limits& limits, v1::MeshConfig* c) {
  if (!spec || spec.IsNull()) return;  // all defaults
  if (!r.CheckMap(spec, "spec",
                  {"trustDomain", "defaultMode", "defaultPolicy", "certTTL", "excludeCidrs", "strictUdp", "tracing"})) {
    return;
  }
  if (auto td = r.Str(spec, "trustDomain", "spec", false)) {
    if (std::string why; !tls::ValidTrustDomain(*td, &why)) r.Fail(spec["trustDomain"], "'spec.trustDomain': " + why);
    c->set_trust_domain(*td);
  }
  if (auto mode = ParseMode(r, spec, "defaultMode", "spec")) c->set_default_mode(*mode);
  if (auto a = ParseAction(r, spec, "defaultPolicy", "spec", false)) c->set_default_policy(*a);
  if (auto ttl = r.Str(spec, "certTTL", "spec", false)) {
    auto secs = ParseDuration(*ttl);
    if (!secs || *secs < 60) {
      r.Fail(spec["certTTL"], "'spec.certTTL': '" + *ttl + "' is not a duration of at least 1m (e.g. 24h, 90m)");
    } else if (*secs > limits.max_cert_ttl_seconds) {
      r.Fail(spec["certTTL"], "'spec.certTTL': " + *ttl + " exceeds the controller maximum of " +
                                  std::to_string(limits.max_cert_ttl_seconds) + "s");
    } else {
      c->set_cert_ttl_seconds(static_cast<uint32_t>(*secs));
    }
  }
  for (auto& cidr : r.StrList(spec, "excludeCidrs", "spec", CheckCidr)) c->add_exclude_cidrs(CanonicalCidr(cidr));
  if (auto udp = r.Str(spec, "strictUdp", "spec", false)) {
    if (*udp == "Allow") {
      c->set_strict_udp_allowed(true);
    } else if (*udp != "DNSOnly") {
      r.Fail(spec["strictUdp"], "'spec.strictUdp' must be DNSOnly or Allow, not '" + *udp + "'");
    }
  }
  DecodeTracing(r, spec["tracing"], c);
}

// Kubernetes' own Namespace (apiVersion v1): metadata.name and metadata.labels, nothing else. The labels
// zeromesh.io/mesh and zeromesh.io/mode must have values the mesh understands; any other label is the user's.
void DecodeNamespace(YamlReader& r, const YAML::Node& doc, const std::string& file, Result* out) {
  size_t errors_before = r.error_count();
  YAML::Node meta = doc["metadata"];
  if (!meta) {
    r.Fail(doc, "missing required field 'metadata'");
    return;
  }
  if (!r.CheckMap(meta, "metadata", {"name", "labels"})) return;
  Namespace ns;
  ns.file = file;
  ns.line = YamlReader::Line(doc);
  if (auto name = r.Str(meta, "name", "metadata", true)) {
    if (std::string why = CheckNamespace(*name); !why.empty()) r.Fail(meta["name"], "'metadata.name': " + why);
    ns.name = *name;
  }
  auto labels = r.Labels(meta, "labels", "metadata");
  if (auto it = labels.find(kMeshLabel); it != labels.end()) {
    if (it->second == kMeshEnabled || it->second == kMeshDisabled) {
      ns.enrolled = it->second == kMeshEnabled;
    } else {
      r.Fail(meta["labels"][kMeshLabel], std::string("label '") + kMeshLabel + "' must be " + kMeshEnabled + " or " +
                                             kMeshDisabled + ", not '" + it->second + "'");
    }
  }
  if (auto it = labels.find(kModeLabel); it != labels.end()) {
    if (std::string why = ParseModeLabel(it->second, &ns.mode); !why.empty()) r.Fail(meta["labels"][kModeLabel], why);
  }
  if (r.error_count() == errors_before) out->namespaces.push_back(std::move(ns));
}

void DecodeDocument(YamlReader& r, const YAML::Node& doc, const Limits& limits, const std::string& file, Result* out) {
  if (!doc || doc.IsNull()) return;  // empty document (e.g. trailing ---)
  size_t errors_before = r.error_count();
  // A Namespace has no spec (Kubernetes' has one for finalizers, which mean nothing here).
  const bool is_namespace =
      doc.IsMap() && doc["kind"] && doc["kind"].IsScalar() && doc["kind"].Scalar() == kNamespaceKind;
  if (is_namespace ? !r.CheckMap(doc, "", {"apiVersion", "kind", "metadata"})
                   : !r.CheckMap(doc, "", {"apiVersion", "kind", "metadata", "spec"})) {
    return;
  }
  auto api = r.Str(doc, "apiVersion", "", true);
  auto kind = r.Str(doc, "kind", "", true);
  // TCPRoute, HTTPRoute, GRPCRoute and ReferenceGrant are the Gateway API's own kinds, Namespace is Kubernetes'; the
  // rest is zeromesh's.
  const bool l7_route = kind && (*kind == "HTTPRoute" || *kind == "GRPCRoute");
  const char* want_api = kind && *kind == "TCPRoute"         ? kGatewayApiVersion
                         : l7_route                          ? kGatewayV1ApiVersion
                         : kind && *kind == "ReferenceGrant" ? kReferenceGrantApiVersion
                         : is_namespace                      ? kNamespaceApiVersion
                                                             : kApiVersion;
  if (api && *api != want_api) {
    r.Fail(doc["apiVersion"],
           "unsupported apiVersion '" + *api + "' for kind " + kind.value_or("?") + " (expected " + want_api + ")");
  }
  if (!kind) return;
  if (is_namespace) {
    if (r.error_count() == errors_before) DecodeNamespace(r, doc, file, out);
    return;
  }
  bool cluster_scoped = *kind == "MeshConfig";
  if (*kind != "Workload" && *kind != "Service" && *kind != "TrafficPermission" && *kind != "TCPRoute" &&
      *kind != "ServicePolicy" && *kind != "ReferenceGrant" && !l7_route && !cluster_scoped) {
    r.Fail(doc["kind"], "unknown kind '" + *kind +
                            "' (expected Workload, Service, TrafficPermission, ServicePolicy, TCPRoute, HTTPRoute, "
                            "GRPCRoute, ReferenceGrant, Namespace or MeshConfig)");
    return;
  }
  Meta m;
  YAML::Node meta = doc["metadata"];
  if (!meta) {
    r.Fail(doc, "missing required field 'metadata'");
    return;
  }
  if (!r.CheckMap(meta, "metadata", {"name", "namespace", "labels", "annotations"})) return;
  if (auto name = r.Str(meta, "name", "metadata", true)) {
    if (std::string why = CheckName(*name); !why.empty()) r.Fail(meta["name"], "'metadata.name': " + why);
    m.name = *name;
  }
  if (auto ns = r.Str(meta, "namespace", "metadata", false)) {
    if (cluster_scoped) r.Fail(meta["namespace"], "MeshConfig is cluster-scoped: remove 'metadata.namespace'");
    if (std::string why = CheckNamespace(*ns); !why.empty()) r.Fail(meta["namespace"], "'metadata.namespace': " + why);
    m.ns = *ns;
  } else if (!cluster_scoped) {
    m.ns = "default";
  }
  m.labels = r.Labels(meta, "labels", "metadata");
  r.Labels(meta, "annotations", "metadata");  // validated, otherwise unused

  YAML::Node spec = doc["spec"];
  if (!cluster_scoped && (!spec || spec.IsNull())) {
    r.Fail(doc, "missing required field 'spec'");
    return;
  }
  if (*kind == "ReferenceGrant") {  // not a mesh resource: it only gates TCPRoute backendRefs (CheckSet)
    ReferenceGrant g;
    DecodeReferenceGrant(r, m.name, m.ns, spec, &g);
    g.file = file;
    g.line = YamlReader::Line(doc);
    if (r.error_count() == errors_before) out->grants.push_back(std::move(g));
    return;
  }
  Located loc;
  loc.file = file;
  loc.line = YamlReader::Line(doc);
  if (*kind == "Workload") {
    DecodeWorkload(r, m, spec, &loc);
  } else if (*kind == "Service") {
    DecodeService(r, m, spec, loc.resource.Mutable()->mutable_service());
  } else if (*kind == "TrafficPermission") {
    DecodePermission(r, m, spec, loc.resource.Mutable()->mutable_traffic_permission());
  } else if (*kind == "TCPRoute") {
    DecodeTcpRoute(r, m.name, m.ns, spec, loc.resource.Mutable()->mutable_tcp_route());
  } else if (*kind == "HTTPRoute") {
    DecodeHttpRoute(r, m.name, m.ns, spec, loc.resource.Mutable()->mutable_http_route());
  } else if (*kind == "GRPCRoute") {
    DecodeGrpcRoute(r, m.name, m.ns, spec, loc.resource.Mutable()->mutable_grpc_route());
  } else if (*kind == "ServicePolicy") {
    DecodeServicePolicy(r, m.name, m.ns, spec, loc.resource.Mutable()->mutable_service_policy());
  } else {
    loc.resource.Mutable()->mutable_mesh_config()->set_name(m.name);
    DecodeMeshConfig(r, spec, limits, loc.resource.Mutable()->mutable_mesh_config());
  }
  if (r.error_count() == errors_before) out->resources.push_back(std::move(loc));
}

// "ip: fd00::" does not parse ("illegal map value"): when line |index| (0-based) of |text| ends in such a value, how to
// write it, else "".
std::string LineEndHint(const std::string& text, int index) {
  size_t begin = 0;
  for (int i = 0; i < index && begin != std::string::npos; i++) {
    begin = text.find('\n', begin);
    if (begin != std::string::npos) begin++;
  }
  if (begin == std::string::npos) return "";
  std::string line = text.substr(begin, text.find('\n', begin) - begin);
  size_t end = line.find_last_not_of(" \t\r");
  if (end == std::string::npos) return "";
  size_t start = line.find_last_of(" \t[,", end);
  start = start == std::string::npos ? 0 : start + 1;
  std::string hint = UnquotedColonsHint(line.substr(start, end + 1 - start));
  return hint.empty() ? "" : " (" + hint + ")";
}

}  // namespace

void DecodeText(const std::string& text, const std::string& file, const Limits& limits, Result* out) {
  YamlReader r(file, &out->errors);
  if (int line = UnsafeYamlLine(text); line > 0) {
    out->errors.push_back(Error{file, line, "bad YAML: a control character, or a document that starts with ','"});
    return;
  }
  if (std::string why; !YamlParsesInTime(text, kYamlParseSeconds, &why)) {
    out->errors.push_back(Error{file, 0, "bad YAML: " + why});
    return;
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    out->errors.push_back(Error{file, e.mark.is_null() ? 0 : e.mark.line + 1, "bad YAML: " + e.msg});
    if (!e.mark.is_null()) out->errors.back().reason += LineEndHint(text, e.mark.line);
    return;
  }
  for (const auto& doc : docs) {
    try {
      DecodeDocument(r, doc, limits, file, out);
    } catch (const YAML::Exception& e) {  // a shape we did not anticipate; never fatal
      out->errors.push_back(
          Error{file, e.mark.is_null() ? YamlReader::Line(doc) : e.mark.line + 1, "invalid document: " + e.msg});
    }
  }
}

}  // namespace zm::manifest
