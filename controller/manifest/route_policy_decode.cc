#include "controller/manifest/route_policy_decode.h"

#include <cstdlib>
#include <map>
#include <set>

#include "controller/manifest/traffic_decode.h"

namespace zm::manifest {
namespace v1 = zeromesh::v1;
namespace {

// What a ServicePolicy on a Service takes and one on a route does not (they act on connections, not requests).
constexpr const char* kServiceOnlyFields[] = {"loadBalancer",   "connectTimeout",   "idleTimeout", "retries",
                                              "circuitBreaker", "outlierDetection", "rateLimit"};

}  // namespace

void DecodeHttpRateLimit(YamlReader& r, const YAML::Node& n, v1::HttpRateLimit* out) {
  const std::string path = "spec.http.rateLimit";
  if (!r.CheckMap(n, path, {"requests", "interval", "burst", "perSource"})) return;
  auto requests = r.Int(n, "requests", path, 1, 1'000'000);
  if (!requests && !n["requests"]) r.Fail(n, "missing required field '" + path + ".requests'");
  out->set_requests(static_cast<uint32_t>(requests.value_or(0)));
  out->set_interval_ms(1000);
  if (auto s = r.Str(n, "interval", path, false)) {
    auto ms = ParseDurationMs(*s);
    if (!ms || *ms < 1 || *ms > 3'600'000) {
      r.Fail(n["interval"], "'" + path + ".interval': '" + *s + "' is not a duration between 1ms and 1h (e.g. 1s, 1m)");
    } else {
      out->set_interval_ms(static_cast<uint32_t>(*ms));
    }
  }
  out->set_burst(static_cast<uint32_t>(r.Int(n, "burst", path, 1, 10'000'000).value_or(requests.value_or(1))));
  out->set_per_source(r.Bool(n, "perSource", path).value_or(false));
}

namespace {

void DecodeFault(YamlReader& r, const YAML::Node& n, v1::HttpFaultInjection* out) {
  const std::string path = "spec.http.faultInjection";
  if (!r.CheckMap(n, path, {"delay", "abort"})) return;
  YAML::Node delay = n["delay"], abort = n["abort"];
  const bool has_delay = delay && !delay.IsNull(), has_abort = abort && !abort.IsNull();
  if (!has_delay && !has_abort) r.Fail(n, "'" + path + "' needs a 'delay', an 'abort' or both");
  if (has_delay && r.CheckMap(delay, path + ".delay", {"fixedDelay", "percentage"})) {
    const std::string p = path + ".delay";
    auto ms = DurationMs(r, delay, "fixedDelay", p);
    if (!ms && !delay["fixedDelay"]) r.Fail(delay, "missing required field '" + p + ".fixedDelay'");
    out->set_delay_ms(ms.value_or(0));
    out->set_delay_percentage(Percentage(r, delay, "percentage", p).value_or(100));
  }
  if (has_abort && r.CheckMap(abort, path + ".abort", {"httpStatus", "grpcStatus", "percentage"})) {
    const std::string p = path + ".abort";
    auto status = r.Int(abort, "httpStatus", p, 200, 599);
    if (!status && !abort["httpStatus"]) r.Fail(abort, "missing required field '" + p + ".httpStatus'");
    out->set_abort_http_status(static_cast<uint32_t>(status.value_or(0)));
    // gRPC status 0 is OK, which is no abort: 1 (CANCELLED) .. 16 (UNAUTHENTICATED).
    out->set_abort_grpc_status(static_cast<uint32_t>(r.Int(abort, "grpcStatus", p, 1, 16).value_or(0)));
    out->set_abort_percentage(Percentage(r, abort, "percentage", p).value_or(100));
  }
}

}  // namespace

bool IsRouteTarget(const YAML::Node& target) {
  if (!target || !target.IsMap()) return false;
  YAML::Node kind = target["kind"];
  return kind && kind.IsScalar() && (kind.Scalar() == "HTTPRoute" || kind.Scalar() == "GRPCRoute");
}

std::optional<double> Percentage(YamlReader& r, const YAML::Node& map, const char* key, const std::string& path) {
  YAML::Node v = map[key];
  if (!v || v.IsNull()) return std::nullopt;
  const std::string where = "'" + path + "." + key + "'";
  // Digits with an optional fraction: no sign, exponent, hex, inf or nan, which strtod would take.
  bool ok = v.IsScalar() && !v.Scalar().empty() && v.Scalar().size() <= 24;
  int dots = 0;
  if (ok) {
    for (char c : v.Scalar()) {
      if (c == '.') {
        ++dots;
      } else if (c < '0' || c > '9') {
        ok = false;
      }
    }
    ok = ok && dots <= 1 && v.Scalar().front() != '.' && v.Scalar().back() != '.';
  }
  if (!ok) {
    r.Fail(v, where + " must be a number between 0 and 100 (e.g. 50 or 0.5)");
    return std::nullopt;
  }
  double d = std::strtod(v.Scalar().c_str(), nullptr);
  if (d < 0 || d > 100) {
    r.Fail(v, where + " = " + v.Scalar() + " is out of range [0, 100] (a percentage)");
    return std::nullopt;
  }
  return d;
}

void DecodeRoutePolicy(YamlReader& r, const YAML::Node& spec, v1::ServicePolicy* out) {
  for (const char* f : kServiceOnlyFields) {
    if (YAML::Node n = spec[f]; n) {
      r.Fail(n, std::string("'spec.") + f +
                    "' applies to a Service target (connections); a ServicePolicy on an HTTPRoute or GRPCRoute takes "
                    "only 'spec.http' (rateLimit, faultInjection)");
    }
  }
  YAML::Node target = spec["targetRef"];
  if (r.CheckMap(target, "spec.targetRef", {"group", "kind", "name", "sectionName"})) {
    auto* t = out->mutable_target_route();
    t->set_kind(target["kind"].Scalar());
    auto g = r.Str(target, "group", "spec.targetRef", false);
    if (!g || *g != kGatewayGroup) {
      r.Fail(target["group"] ? target["group"] : target,
             "'spec.targetRef.group' must be " + std::string(kGatewayGroup) + " for kind " + t->kind());
    }
    if (auto n = r.Str(target, "name", "spec.targetRef", true)) {
      if (std::string why = CheckName(*n); !why.empty()) r.Fail(target["name"], "'spec.targetRef.name': " + why);
      t->set_name(*n);
    }
    if (auto s = r.Str(target, "sectionName", "spec.targetRef", false)) {
      if (std::string why = CheckName(*s); !why.empty()) {
        r.Fail(target["sectionName"], "'spec.targetRef.sectionName' (a rule's name): " + why);
      }
      t->set_section_name(*s);
    }
  }
  YAML::Node http = spec["http"];
  if (!http || http.IsNull()) {
    r.Fail(spec,
           "missing required field 'spec.http' (a ServicePolicy on a route sets rateLimit and/or faultInjection)");
    return;
  }
  if (!r.CheckMap(http, "spec.http", {"rateLimit", "faultInjection"})) return;
  YAML::Node rl = http["rateLimit"], fi = http["faultInjection"];
  if ((!rl || rl.IsNull()) && (!fi || fi.IsNull())) {
    r.Fail(http, "'spec.http' needs a 'rateLimit', a 'faultInjection' or both");
    return;
  }
  if (rl && !rl.IsNull()) DecodeHttpRateLimit(r, rl, out->mutable_http_rate_limit());
  if (fi && !fi.IsNull()) DecodeFault(r, fi, out->mutable_http_fault());
}

void CheckRoutePolicyRefs(Result* r) {
  // "HTTPRoute/ns/name" -> the names of its rules.
  std::map<std::string, std::set<std::string>> routes;
  for (const auto& l : r->resources) {
    if (l.resource->has_http_route()) {
      const auto& rt = l.resource->http_route();
      auto& names = routes["HTTPRoute/" + rt.namespace_() + "/" + rt.name()];
      for (const auto& rule : rt.rules()) names.insert(rule.name());
    } else if (l.resource->has_grpc_route()) {
      const auto& rt = l.resource->grpc_route();
      auto& names = routes["GRPCRoute/" + rt.namespace_() + "/" + rt.name()];
      for (const auto& rule : rt.rules()) names.insert(rule.name());
    }
  }
  std::map<std::string, const Located*> targets;
  for (const auto& l : r->resources) {
    if (!l.resource->has_service_policy() || !l.resource->service_policy().has_target_route()) continue;
    const auto& sp = l.resource->service_policy();
    const auto& t = sp.target_route();
    const std::string self = "ServicePolicy " + sp.namespace_() + "/" + sp.name();
    const std::string route = t.kind() + "/" + sp.namespace_() + "/" + t.name();
    auto it = routes.find(route);
    if (it == routes.end()) {
      r->errors.push_back(
          {l.file, l.line, self + ": targetRef names no " + t.kind() + " " + sp.namespace_() + "/" + t.name()});
      continue;
    }
    if (!t.section_name().empty() && !it->second.count(t.section_name())) {
      r->notices.push_back({l.file, l.line,
                            self + ": " + t.kind() + " " + sp.namespace_() + "/" + t.name() + " has no rule named '" +
                                t.section_name() + "'; the policy applies to no request until one exists"});
    }
    const std::string key = route + "#" + t.section_name();
    if (auto [prev, fresh] = targets.emplace(key, &l); !fresh) {
      r->errors.push_back({l.file, l.line,
                           self + ": " + route + (t.section_name().empty() ? "" : " rule " + t.section_name()) +
                               " already has a ServicePolicy at " + prev->second->file + ":" +
                               std::to_string(prev->second->line)});
    }
  }
}

}  // namespace zm::manifest
