#include "controller/manifest/traffic_decode.h"

#include <map>
#include <set>

#include "controller/manifest/route_policy_decode.h"

namespace zm::manifest {
namespace v1 = zeromesh::v1;
namespace {

constexpr int64_t kMaxTimeoutMs = 3600 * 1000;

}  // namespace

std::string Idx(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// group must be the core group ("" ) and kind Service; |kind_required| for parentRefs (whose Gateway API default is
// Gateway, which zeromesh does not have).
void CheckServiceKind(YamlReader& r, const YAML::Node& ref, const std::string& path, bool kind_required) {
  if (auto g = r.Str(ref, "group", path, false); g && !g->empty() && *g != "core") {
    r.Fail(ref["group"], "'" + path + ".group' must be \"\" (core), not '" + *g + "'");
  }
  auto kind = r.Str(ref, "kind", path, kind_required);
  if (kind && *kind != "Service") {
    r.Fail(ref["kind"], "'" + path + ".kind' must be Service, not '" + *kind + "' (mesh routes attach to Services)");
  }
}

std::optional<uint32_t> DurationMs(YamlReader& r, const YAML::Node& map, const char* key, const std::string& path) {
  auto s = r.Str(map, key, path, false);
  if (!s) return std::nullopt;
  auto ms = ParseDurationMs(*s);
  if (!ms || *ms < 1 || *ms > kMaxTimeoutMs) {
    r.Fail(map[key], "'" + path + "." + key + "': '" + *s + "' is not a duration between 1ms and 1h (e.g. 500ms, 2s)");
    return std::nullopt;
  }
  return static_cast<uint32_t>(*ms);
}

void DecodeParentRefs(YamlReader& r, const YAML::Node& spec, const std::string& ns,
                      google::protobuf::RepeatedPtrField<v1::ParentRef>* out) {
  YAML::Node parents = spec["parentRefs"];
  if (!parents || parents.IsNull()) {
    r.Fail(spec, "missing required field 'spec.parentRefs'");
  } else if (!parents.IsSequence() || parents.size() == 0) {
    r.Fail(parents, "'spec.parentRefs' must be a non-empty list");
  } else if (parents.size() > kMaxParentRefs) {
    r.Fail(parents, "'spec.parentRefs' has " + std::to_string(parents.size()) + " entries; at most " +
                        std::to_string(kMaxParentRefs) + " are allowed");
  } else {
    for (size_t i = 0; i < parents.size(); ++i) {
      std::string path = Idx("spec.parentRefs", i);
      YAML::Node p = parents[i];
      if (!r.CheckMap(p, path, {"group", "kind", "name", "namespace", "port"})) continue;
      CheckServiceKind(r, p, path, true);
      auto* ref = out->Add();
      ref->set_kind("Service");
      if (auto n = r.Str(p, "name", path, true)) {
        if (std::string why = CheckName(*n); !why.empty()) r.Fail(p["name"], "'" + path + ".name': " + why);
        ref->set_name(*n);
      }
      ref->set_namespace_(r.Str(p, "namespace", path, false).value_or(ns));
      if (ref->namespace_() != ns) {
        r.Fail(p["namespace"], "'" + path + ".namespace': a mesh route must be in its parent Service's namespace");
      }
      ref->set_port(static_cast<uint32_t>(r.Int(p, "port", path, 1, 65535).value_or(0)));
    }
  }
}

bool DecodeBackendRef(YamlReader& r, const YAML::Node& b, const std::string& path, const std::string& ns,
                      std::initializer_list<std::string_view> allowed, v1::BackendRef* ref) {
  if (!r.CheckMap(b, path, allowed)) return false;
  CheckServiceKind(r, b, path, false);
  if (auto n = r.Str(b, "name", path, true)) {
    if (std::string why = CheckName(*n); !why.empty()) r.Fail(b["name"], "'" + path + ".name': " + why);
    ref->set_name(*n);
  }
  ref->set_namespace_(r.Str(b, "namespace", path, false).value_or(ns));
  if (std::string why = CheckNamespace(ref->namespace_()); !why.empty()) {
    r.Fail(b["namespace"], "'" + path + ".namespace': " + why);
  }
  // Another namespace's Service is used only if a ReferenceGrant there permits it (reference_grant.h).
  auto port = r.Int(b, "port", path, 1, 65535);
  if (!port && !b["port"]) r.Fail(b, "missing required field '" + path + ".port' (the backend Service's port)");
  ref->set_port(static_cast<uint32_t>(port.value_or(0)));
  return true;
}

void DecodeBackendRefs(YamlReader& r, const YAML::Node& rule, const std::string& rule_path, const std::string& ns,
                       google::protobuf::RepeatedPtrField<v1::BackendRef>* out) {
  const std::string list = rule_path + ".backendRefs";
  YAML::Node backends = rule["backendRefs"];
  if (!backends || !backends.IsSequence() || backends.size() == 0) {
    r.Fail(backends ? backends : rule, "'" + list + "' must be a non-empty list");
    return;
  }
  if (backends.size() > kMaxBackendRefs) {
    r.Fail(backends, "'" + list + "' has " + std::to_string(backends.size()) + " entries; at most " +
                         std::to_string(kMaxBackendRefs) + " are allowed");
    return;
  }
  uint64_t total = 0;
  std::set<std::string> seen;
  for (size_t i = 0; i < backends.size(); ++i) {
    std::string path = Idx(list, i);
    YAML::Node b = backends[i];
    v1::BackendRef* ref = out->Add();
    if (!DecodeBackendRef(r, b, path, ns, {"group", "kind", "name", "namespace", "port", "weight"}, ref)) {
      out->RemoveLast();
      continue;
    }
    ref->set_weight(static_cast<uint32_t>(r.Int(b, "weight", path, 0, 1'000'000).value_or(1)));
    total += ref->weight();
    std::string key = ref->namespace_() + "/" + ref->name() + ":" + std::to_string(ref->port());
    if (!seen.insert(key).second) r.Fail(b, "'" + path + "': backend " + key + " is listed twice");
  }
  if (total == 0) r.Fail(backends, "'" + list + "': at least one backend needs a weight above 0");
}

std::optional<int64_t> ParseDurationMs(const std::string& s) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0, cur = 0;
  bool digits = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      if (cur > 1'000'000'000) return std::nullopt;
      cur = cur * 10 + (c - '0');
      digits = true;
      continue;
    }
    if (!digits) return std::nullopt;
    int64_t unit = 0;
    if (c == 'm' && i + 1 < s.size() && s[i + 1] == 's') {
      unit = 1;
      ++i;
    } else {
      unit = c == 'h' ? 3'600'000 : c == 'm' ? 60'000 : c == 's' ? 1000 : 0;
    }
    if (unit == 0) return std::nullopt;
    total += cur * unit;
    cur = 0;
    digits = false;
  }
  if (digits) return std::nullopt;  // a number needs a unit
  return total;
}

void DecodeTcpRoute(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                    v1::TcpRoute* out) {
  out->set_name(name);
  out->set_namespace_(ns);
  if (!r.CheckMap(spec, "spec", {"parentRefs", "rules"})) return;
  DecodeParentRefs(r, spec, ns, out->mutable_parent_refs());
  YAML::Node rules = spec["rules"];
  if (!rules || rules.IsNull()) {
    r.Fail(spec, "missing required field 'spec.rules'");
    return;
  }
  if (!rules.IsSequence() || rules.size() != 1) {
    r.Fail(rules, "'spec.rules' must be a list with exactly one rule (TCPRoute rules have no matches)");
    return;
  }
  YAML::Node rule = rules[0];
  if (!r.CheckMap(rule, "spec.rules[0]", {"backendRefs"})) return;
  auto* out_rule = out->add_rules();
  DecodeBackendRefs(r, rule, "spec.rules[0]", ns, out_rule->mutable_backend_refs());
}

void DecodeServicePolicy(YamlReader& r, const std::string& name, const std::string& ns, const YAML::Node& spec,
                         v1::ServicePolicy* out) {
  out->set_name(name);
  out->set_namespace_(ns);
  if (!r.CheckMap(spec, "spec",
                  {"targetRef", "loadBalancer", "connectTimeout", "idleTimeout", "retries", "circuitBreaker",
                   "outlierDetection", "rateLimit", "http"})) {
    return;
  }
  YAML::Node target = spec["targetRef"];
  if (IsRouteTarget(target)) {  // per-request settings of an HTTPRoute / GRPCRoute (route_policy_decode.h)
    DecodeRoutePolicy(r, spec, out);
    return;
  }
  // On a Service, spec.http takes only rateLimit: the destination node enforces it per pod (docs/route-policies.md).
  if (YAML::Node http = spec["http"]; http && r.CheckMap(http, "spec.http", {"rateLimit", "faultInjection"})) {
    if (YAML::Node fi = http["faultInjection"]; fi) {
      r.Fail(fi,
             "'spec.http.faultInjection' applies to a route target (spec.targetRef.kind HTTPRoute or GRPCRoute), "
             "not a Service");
    }
    if (YAML::Node rl = http["rateLimit"]; rl && !rl.IsNull()) {
      DecodeHttpRateLimit(r, rl, out->mutable_http_rate_limit());
    } else if (!http["faultInjection"]) {
      r.Fail(http, "'spec.http' on a Service target needs a 'rateLimit'");
    }
  }
  if (!target || target.IsNull()) {
    r.Fail(spec, "missing required field 'spec.targetRef'");
  } else if (r.CheckMap(target, "spec.targetRef", {"group", "kind", "name", "sectionName"})) {
    if (target["sectionName"]) {
      r.Fail(target["sectionName"],
             "'spec.targetRef.sectionName' names a rule of an HTTPRoute or GRPCRoute target, "
             "not a part of a Service");
    }
    CheckServiceKind(r, target, "spec.targetRef", true);
    if (auto n = r.Str(target, "name", "spec.targetRef", true)) {
      if (std::string why = CheckName(*n); !why.empty()) r.Fail(target["name"], "'spec.targetRef.name': " + why);
      out->set_target_service(*n);
    }
  }
  if (YAML::Node lb = spec["loadBalancer"]; lb && !lb.IsNull()) {
    if (r.CheckMap(lb, "spec.loadBalancer", {"algorithm", "localityPreference"})) {
      if (auto a = r.Str(lb, "algorithm", "spec.loadBalancer", false)) {
        if (*a == "RoundRobin") {
          out->set_algorithm(v1::ROUND_ROBIN);
        } else if (*a == "LeastConnections") {
          out->set_algorithm(v1::LEAST_CONNECTIONS);
        } else if (*a == "PowerOfTwoChoices") {
          out->set_algorithm(v1::POWER_OF_TWO_CHOICES);
        } else if (*a == "LeastRequest") {
          out->set_algorithm(v1::LEAST_REQUEST);
        } else if (*a == "EWMA") {
          out->set_algorithm(v1::EWMA);
        } else {
          r.Fail(lb["algorithm"],
                 "'spec.loadBalancer.algorithm' must be RoundRobin, LeastConnections, PowerOfTwoChoices, "
                 "LeastRequest or EWMA, not '" +
                     *a + "'");
        }
      }
      out->set_locality_preference(r.Bool(lb, "localityPreference", "spec.loadBalancer").value_or(false));
    }
  }
  out->set_connect_timeout_ms(DurationMs(r, spec, "connectTimeout", "spec").value_or(0));
  out->set_idle_timeout_ms(DurationMs(r, spec, "idleTimeout", "spec").value_or(0));
  if (YAML::Node n = spec["retries"]; n && !n.IsNull() && r.CheckMap(n, "spec.retries", {"attempts"})) {
    out->set_retry_attempts(static_cast<uint32_t>(r.Int(n, "attempts", "spec.retries", 0, 10).value_or(0)));
  }
  if (YAML::Node n = spec["circuitBreaker"];
      n && !n.IsNull() && r.CheckMap(n, "spec.circuitBreaker", {"maxConnections", "maxPendingConnections"})) {
    out->set_max_connections(
        static_cast<uint32_t>(r.Int(n, "maxConnections", "spec.circuitBreaker", 1, 10'000'000).value_or(0)));
    out->set_max_pending_connections(
        static_cast<uint32_t>(r.Int(n, "maxPendingConnections", "spec.circuitBreaker", 1, 10'000'000).value_or(0)));
  }
  if (YAML::Node n = spec["outlierDetection"];
      n && !n.IsNull() &&
      r.CheckMap(n, "spec.outlierDetection", {"consecutiveFailures", "baseEjectionTime", "maxEjectionPercent"})) {
    auto failures = r.Int(n, "consecutiveFailures", "spec.outlierDetection", 1, 1000);
    if (!failures && !n["consecutiveFailures"]) {
      r.Fail(n, "missing required field 'spec.outlierDetection.consecutiveFailures'");
    }
    out->set_outlier_consecutive_failures(static_cast<uint32_t>(failures.value_or(0)));
    out->set_outlier_base_ejection_ms(DurationMs(r, n, "baseEjectionTime", "spec.outlierDetection").value_or(30000));
    out->set_outlier_max_ejection_percent(
        static_cast<uint32_t>(r.Int(n, "maxEjectionPercent", "spec.outlierDetection", 1, 100).value_or(10)));
  }
  if (YAML::Node n = spec["rateLimit"];
      n && !n.IsNull() && r.CheckMap(n, "spec.rateLimit", {"connectionsPerSecond", "burst", "perSource"})) {
    auto rate = r.Int(n, "connectionsPerSecond", "spec.rateLimit", 1, 1'000'000);
    if (!rate && !n["connectionsPerSecond"]) r.Fail(n, "missing required field 'spec.rateLimit.connectionsPerSecond'");
    out->set_rate_limit_per_second(static_cast<double>(rate.value_or(0)));
    out->set_rate_limit_burst(
        static_cast<uint32_t>(r.Int(n, "burst", "spec.rateLimit", 1, 10'000'000).value_or(rate.value_or(1))));
    out->set_rate_limit_per_source(r.Bool(n, "perSource", "spec.rateLimit").value_or(false));
  }
}

void CheckTrafficRefs(Result* r) {
  std::map<std::string, const v1::Service*> services;  // "ns/name", the last of a duplicated name
  for (const auto& l : r->resources) {
    if (l.resource->has_service()) {
      services[l.resource->service().namespace_() + "/" + l.resource->service().name()] = &l.resource->service();
    }
  }
  CheckTrafficRefs(r, [&](const std::string& ns, const std::string& name) -> const v1::Service* {
    auto it = services.find(ns + "/" + name);
    return it == services.end() ? nullptr : it->second;
  });
}

void CheckTrafficRefs(Result* r, const ServiceLookup& find_service) {
  auto has_port = [](const v1::Service* s, uint32_t port) {
    for (const auto& p : s->ports()) {
      if (p.port() == port) return true;
    }
    return false;
  };
  auto where = [](const Located& l) { return l.file + ":" + std::to_string(l.line); };
  std::map<std::string, const Located*> parent_ports, policy_targets;
  for (const auto& l : r->resources) {
    if (l.resource->has_tcp_route()) {
      const auto& rt = l.resource->tcp_route();
      std::string self = "TCPRoute " + rt.namespace_() + "/" + rt.name();
      for (const auto& p : rt.parent_refs()) {
        std::string key = p.namespace_() + "/" + p.name();
        const v1::Service* svc = find_service(p.namespace_(), p.name());
        if (svc == nullptr) {
          r->errors.push_back({l.file, l.line, self + ": parentRef names no Service " + key});
          continue;
        }
        if (p.port() != 0 && !has_port(svc, p.port())) {
          r->errors.push_back(
              {l.file, l.line, self + ": parentRef port " + std::to_string(p.port()) + " is not a port of " + key});
        }
        std::string pk = key + ":" + std::to_string(p.port());
        if (auto [pit, fresh] = parent_ports.emplace(pk, &l); !fresh) {
          r->errors.push_back(
              {l.file, l.line, self + ": Service " + pk + " already has a route at " + where(*pit->second)});
        }
      }
      for (const auto& rule : rt.rules()) {
        for (const auto& b : rule.backend_refs()) {
          std::string key = b.namespace_() + "/" + b.name();
          const v1::Service* svc = find_service(b.namespace_(), b.name());
          if (svc == nullptr) {
            r->errors.push_back({l.file, l.line, self + ": backendRef names no Service " + key});
          } else if (!has_port(svc, b.port())) {
            r->errors.push_back(
                {l.file, l.line, self + ": backendRef port " + std::to_string(b.port()) + " is not a port of " + key});
          }
        }
      }
    } else if (l.resource->has_http_route() || l.resource->has_grpc_route()) {
      // Several HTTPRoutes / GRPCRoutes may share a parent (their rules merge, Gateway API); only references count.
      const bool http = l.resource->has_http_route();
      const auto& parents = http ? l.resource->http_route().parent_refs() : l.resource->grpc_route().parent_refs();
      std::string self =
          http ? "HTTPRoute " + l.resource->http_route().namespace_() + "/" + l.resource->http_route().name()
               : "GRPCRoute " + l.resource->grpc_route().namespace_() + "/" + l.resource->grpc_route().name();
      for (const auto& p : parents) {
        std::string key = p.namespace_() + "/" + p.name();
        const v1::Service* svc = find_service(p.namespace_(), p.name());
        if (svc == nullptr) {
          r->errors.push_back({l.file, l.line, self + ": parentRef names no Service " + key});
        } else if (p.port() != 0 && !has_port(svc, p.port())) {
          r->errors.push_back(
              {l.file, l.line, self + ": parentRef port " + std::to_string(p.port()) + " is not a port of " + key});
        }
      }
      auto check_backend = [&](const v1::BackendRef& b, const char* what) {
        std::string key = b.namespace_() + "/" + b.name();
        const v1::Service* svc = find_service(b.namespace_(), b.name());
        if (svc == nullptr) {
          r->errors.push_back({l.file, l.line, self + ": " + what + " names no Service " + key});
        } else if (!has_port(svc, b.port())) {
          r->errors.push_back(
              {l.file, l.line, self + ": " + what + " port " + std::to_string(b.port()) + " is not a port of " + key});
        }
      };
      auto check_rule = [&](const auto& rule) {
        for (const auto& b : rule.backend_refs()) check_backend(b, "backendRef");
        for (const auto& f : rule.filters()) {
          if (f.has_request_mirror()) check_backend(f.request_mirror().backend(), "RequestMirror backendRef");
        }
      };
      if (http) {
        for (const auto& rule : l.resource->http_route().rules()) check_rule(rule);
      } else {
        for (const auto& rule : l.resource->grpc_route().rules()) check_rule(rule);
      }
    } else if (l.resource->has_service_policy() && !l.resource->service_policy().has_target_route()) {
      const auto& sp = l.resource->service_policy();
      std::string key = sp.namespace_() + "/" + sp.target_service();
      std::string self = "ServicePolicy " + sp.namespace_() + "/" + sp.name();
      if (!find_service(sp.namespace_(), sp.target_service()))
        r->errors.push_back({l.file, l.line, self + ": targetRef names no Service " + key});
      if (auto [it, fresh] = policy_targets.emplace(key, &l); !fresh) {
        r->errors.push_back(
            {l.file, l.line, self + ": Service " + key + " already has a ServicePolicy at " + where(*it->second)});
      }
    }
  }
  CheckRoutePolicyRefs(r);
}

}  // namespace zm::manifest
