#include "agent/control/service_adapter.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>

#include "agent/control/address_list.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;
namespace {

LbAlgorithm ToAlgorithm(v1::LoadBalancerAlgorithm a) {
  switch (a) {
    case v1::LEAST_CONNECTIONS:
      return LbAlgorithm::kLeastConnections;
    case v1::POWER_OF_TWO_CHOICES:
      return LbAlgorithm::kPowerOfTwoChoices;
    case v1::LEAST_REQUEST:
      return LbAlgorithm::kLeastRequest;
    case v1::EWMA:
      return LbAlgorithm::kEwma;
    default:
      return LbAlgorithm::kRoundRobin;
  }
}

PortProtocol ToProtocol(v1::AppProtocol p) {
  switch (p) {
    case v1::APP_HTTP:
      return PortProtocol::kHttp;
    case v1::APP_HTTP2:
      return PortProtocol::kHttp2;
    case v1::APP_GRPC:
      return PortProtocol::kGrpc;
    default:
      return PortProtocol::kTcp;
  }
}

// The controller validated the regexes with RE2 already; one that still fails to compile (a newer controller's
// syntax) makes the match impossible rather than matching everything.
HttpStringMatch ToStringMatch(const v1::StringMatch& m, bool lower_name) {
  HttpStringMatch out;
  out.type = m.type() == v1::MATCH_PREFIX  ? HttpMatchType::kPrefix
             : m.type() == v1::MATCH_REGEX ? HttpMatchType::kRegex
                                           : HttpMatchType::kExact;
  out.name = m.name();
  if (lower_name) {
    for (char& c : out.name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  out.value = m.value();
  if (out.type == HttpMatchType::kRegex) out.regex = std::make_shared<const re2::RE2>(m.value(), re2::RE2::Quiet);
  return out;
}

HttpHeaderModifier ToHeaderModifier(const v1::HeaderModifier& m) {
  HttpHeaderModifier out;
  for (const auto& h : m.set()) out.set.emplace_back(h.name(), h.value());
  for (const auto& h : m.add()) out.add.emplace_back(h.name(), h.value());
  for (const auto& n : m.remove()) out.remove.push_back(n);
  return out;
}

// A route's backendRef as the proxy resolves it: an empty namespace is the route's.
BackendRef ToBackendRef(const std::string& route_ns, const v1::BackendRef& b, uint32_t weight) {
  return {b.namespace_().empty() ? route_ns : b.namespace_(), b.name(), static_cast<uint16_t>(b.port()), weight};
}

// The backendRefs of a TCPRoute, HTTPRoute or GRPCRoute rule; refs to a port that cannot exist are left out.
void AppendBackendRefs(const std::string& route_ns, const google::protobuf::RepeatedPtrField<v1::BackendRef>& refs,
                       std::vector<BackendRef>* out) {
  for (const auto& b : refs) {
    if (b.port() <= 65535) out->push_back(ToBackendRef(route_ns, b, b.weight()));
  }
}

// The filters HTTPRoute and GRPCRoute rules share: header modifiers and RequestMirror (the mirror's backend Service
// is in the route's namespace unless it names another).
void AppendSharedFilters(const std::string& route_ns, const v1::HttpRouteFilter& f, HttpRouteRule* rule) {
  if (f.has_request_header_modifier()) rule->request_headers.push_back(ToHeaderModifier(f.request_header_modifier()));
  if (f.has_response_header_modifier()) {
    rule->response_headers.push_back(ToHeaderModifier(f.response_header_modifier()));
  }
  if (f.has_request_mirror() && f.request_mirror().backend().port() <= 65535) {
    rule->mirrors.push_back({ToBackendRef(route_ns, f.request_mirror().backend(), 0),
                             std::min<uint32_t>(f.request_mirror().percent(), 100)});
  }
}

HttpRouteRule ToHttpRule(const v1::HttpRoute& rt, int index) {
  HttpRouteRule rule;
  const auto& r = rt.rules(index);
  rule.key = rt.namespace_() + "/" + rt.name() + "#" + std::to_string(index);
  for (const auto& m : r.matches()) {
    HttpRouteMatch hm;
    if (m.has_path()) {
      hm.has_path = true;
      hm.path = ToStringMatch(m.path(), false);
    }
    for (const auto& h : m.headers()) hm.headers.push_back(ToStringMatch(h, true));
    for (const auto& q : m.query_params()) hm.query_params.push_back(ToStringMatch(q, false));
    hm.method = m.method();
    rule.matches.push_back(std::move(hm));
  }
  AppendBackendRefs(rt.namespace_(), r.backend_refs(), &rule.backends);
  for (const auto& f : r.filters()) {
    AppendSharedFilters(rt.namespace_(), f, &rule);
    if (f.has_url_rewrite()) {
      rule.has_rewrite = true;
      rule.rewrite.hostname = f.url_rewrite().hostname();
      rule.rewrite.path = f.url_rewrite().path();
      switch (f.url_rewrite().path_type()) {
        case v1::UrlRewrite::REPLACE_FULL_PATH:
          rule.rewrite.path_type = HttpUrlRewrite::Path::kReplaceFull;
          break;
        case v1::UrlRewrite::REPLACE_PREFIX_MATCH:
          rule.rewrite.path_type = HttpUrlRewrite::Path::kReplacePrefix;
          break;
        default:
          break;
      }
    }
  }
  rule.request_timeout = std::chrono::milliseconds(r.request_timeout_ms());
  rule.backend_request_timeout = std::chrono::milliseconds(r.backend_request_timeout_ms());
  if (r.has_retry()) {
    rule.retry.attempts = r.retry().attempts();
    for (uint32_t c : r.retry().codes()) {
      if (c >= 100 && c <= 599) rule.retry.codes.push_back(static_cast<uint16_t>(c));
    }
    rule.retry.backoff = std::chrono::milliseconds(r.retry().backoff_ms());
  }
  return rule;
}

// A GRPCRoute rule as the proxy applies it: the HTTPRoute rule shape with gRPC method matches.
HttpRouteRule ToGrpcRule(const v1::GrpcRoute& rt, int index) {
  HttpRouteRule rule;
  const auto& r = rt.rules(index);
  rule.key = rt.namespace_() + "/" + rt.name() + "#" + std::to_string(index);
  for (const auto& m : r.matches()) {
    HttpRouteMatch hm;
    if (m.has_method()) {
      const auto& gm = m.method();
      hm.has_grpc_method = true;
      GrpcMethodMatch& out = hm.grpc_method;
      out.type = gm.type() == v1::MATCH_REGEX ? HttpMatchType::kRegex : HttpMatchType::kExact;
      out.service = gm.service();
      out.method = gm.method();
      if (out.type == HttpMatchType::kRegex) {
        if (!out.service.empty()) out.service_regex = std::make_shared<const re2::RE2>(out.service, re2::RE2::Quiet);
        if (!out.method.empty()) out.method_regex = std::make_shared<const re2::RE2>(out.method, re2::RE2::Quiet);
      }
    }
    for (const auto& h : m.headers()) hm.headers.push_back(ToStringMatch(h, true));
    rule.matches.push_back(std::move(hm));
  }
  AppendBackendRefs(rt.namespace_(), r.backend_refs(), &rule.backends);
  // GRPCRoute: header modifiers and RequestMirror (it has no URL rewrite).
  for (const auto& f : r.filters()) AppendSharedFilters(rt.namespace_(), f, &rule);
  return rule;
}

ServiceTrafficPolicy ToPolicy(const v1::ServicePolicy& p) {
  using std::chrono::milliseconds;
  ServiceTrafficPolicy out;
  out.name = p.namespace_() + "/" + p.name();
  out.algorithm = ToAlgorithm(p.algorithm());
  out.locality_preference = p.locality_preference();
  out.connect_timeout = milliseconds(p.connect_timeout_ms());
  out.idle_timeout = milliseconds(p.idle_timeout_ms());
  out.retry_attempts = p.retry_attempts();
  out.max_connections = p.max_connections();
  out.max_pending_connections = p.max_pending_connections();
  out.outlier_consecutive_failures = p.outlier_consecutive_failures();
  if (p.outlier_base_ejection_ms() != 0) out.outlier_base_ejection = milliseconds(p.outlier_base_ejection_ms());
  if (p.outlier_max_ejection_percent() != 0) out.outlier_max_ejection_percent = p.outlier_max_ejection_percent();
  out.rate_limit_per_second = p.rate_limit_per_second();
  out.rate_limit_burst = p.rate_limit_burst();
  out.rate_limit_per_source = p.rate_limit_per_source();
  if (p.has_http_rate_limit() && p.http_rate_limit().requests() > 0) {
    const auto& rl = p.http_rate_limit();
    out.http_rate_limit.policy = out.name;
    out.http_rate_limit.requests = rl.requests();
    out.http_rate_limit.interval = milliseconds(rl.interval_ms());
    out.http_rate_limit.burst = rl.burst() != 0 ? rl.burst() : rl.requests();
    out.http_rate_limit.per_source = rl.per_source();
  }
  return out;
}

// ServicePolicies attached to routes, by "<kind>/<ns>/<route>#<sectionName>" ("" section: every rule).
using RoutePolicies = std::map<std::string, const v1::ServicePolicy*>;

RoutePolicies CollectRoutePolicies(const ConfigState& state) {
  RoutePolicies out;
  for (const auto& [key, r] : state.resources) {
    if (!r.has_service_policy() || !r.service_policy().has_target_route()) continue;
    const auto& p = r.service_policy();
    out[p.target_route().kind() + "/" + p.namespace_() + "/" + p.target_route().name() + "#" +
        p.target_route().section_name()] = &p;
  }
  return out;
}

// The policy of rule |rule_name| of route |route| ("<kind>/<ns>/<name>"): one naming the rule wins over one for the
// whole route (GEP-713: the more specific attachment), as one setting at a time.
void ApplyRoutePolicies(const RoutePolicies& policies, const std::string& route, const std::string& rule_name,
                        HttpRouteRule* rule) {
  const v1::ServicePolicy* whole = nullptr;
  const v1::ServicePolicy* section = nullptr;
  if (auto it = policies.find(route + "#"); it != policies.end()) whole = it->second;
  if (!rule_name.empty()) {
    if (auto it = policies.find(route + "#" + rule_name); it != policies.end()) section = it->second;
  }
  auto pick = [&](bool (v1::ServicePolicy::*has)() const) {
    return section != nullptr && (section->*has)() ? section : whole != nullptr && (whole->*has)() ? whole : nullptr;
  };
  if (const v1::ServicePolicy* p = pick(&v1::ServicePolicy::has_http_rate_limit)) {
    const auto& rl = p->http_rate_limit();
    rule->rate_limit.policy = p->namespace_() + "/" + p->name();
    rule->rate_limit.requests = rl.requests();
    rule->rate_limit.interval = std::chrono::milliseconds(rl.interval_ms());
    rule->rate_limit.burst = rl.burst() != 0 ? rl.burst() : rl.requests();
    rule->rate_limit.per_source = rl.per_source();
  }
  if (const v1::ServicePolicy* p = pick(&v1::ServicePolicy::has_http_fault)) {
    const auto& f = p->http_fault();
    auto percent = [](double v) { return v > 100 ? 100.0 : v < 0 ? 0.0 : v; };  // NaN stays unset: never fires
    rule->fault.policy = p->namespace_() + "/" + p->name();
    rule->fault.delay = std::chrono::milliseconds(f.delay_ms());
    rule->fault.delay_percent = percent(f.delay_percentage());
    if (f.abort_http_status() >= 200 && f.abort_http_status() <= 599) {
      rule->fault.abort_status = static_cast<uint16_t>(f.abort_http_status());
    }
    if (f.abort_grpc_status() <= 16) rule->fault.abort_grpc_status = static_cast<uint8_t>(f.abort_grpc_status());
    rule->fault.abort_percent = percent(f.abort_percentage());
  }
}

}  // namespace

bool ToServices(const ConfigState& state, std::vector<Service>* out, std::string* error) {
  std::vector<Service> services;
  std::map<std::string, size_t> by_key;
  for (const auto& [key, r] : state.resources) {
    if (!r.has_service()) continue;
    const auto& s = r.service();
    Service svc;
    svc.name = s.name();
    svc.ns = s.namespace_();
    std::string where = "service " + svc.Key();
    if (std::string why; !ServiceVips(s, &svc.vips, &why)) {
      *error = where + ": VIP: " + why;
      return false;
    }
    for (const auto& p : s.ports()) {
      if (p.port() == 0 || p.port() > 65535 || p.target_port() > 65535) {
        *error = where + ": bad port " + std::to_string(p.port()) + " -> " + std::to_string(p.target_port());
        return false;
      }
      svc.ports.push_back({static_cast<uint16_t>(p.port()),
                           static_cast<uint16_t>(p.target_port() != 0 ? p.target_port() : p.port()),
                           ToProtocol(p.resolved_protocol())});
    }
    for (const auto& e : s.endpoints()) {
      ServiceEndpoint ep;
      std::optional<net::IpAddr> ip = net::IpAddr::Parse(e.ip());
      if (!ip) {
        *error = where + ": bad endpoint IP '" + e.ip() + "'";
        return false;
      }
      ep.ip = *ip;
      ep.workload = e.workload();
      ep.node = e.node();
      svc.endpoints.push_back(std::move(ep));
    }
    by_key[svc.Key()] = services.size();
    services.push_back(std::move(svc));
  }
  const RoutePolicies route_policies = CollectRoutePolicies(state);
  for (const auto& [key, r] : state.resources) {
    if (r.has_service_policy() && !r.service_policy().has_target_route()) {
      const auto& p = r.service_policy();
      auto it = by_key.find(p.namespace_() + "/" + p.target_service());
      if (it != by_key.end()) services[it->second].policy = ToPolicy(p);
    } else if (r.has_tcp_route()) {
      const auto& rt = r.tcp_route();
      if (rt.rules().empty()) continue;
      for (const auto& parent : rt.parent_refs()) {
        std::string pns = parent.namespace_().empty() ? rt.namespace_() : parent.namespace_();
        auto it = by_key.find(pns + "/" + parent.name());
        if (it == by_key.end() || parent.port() > 65535) continue;
        TrafficSplit split;
        split.route = rt.namespace_() + "/" + rt.name();
        split.port = static_cast<uint16_t>(parent.port());
        AppendBackendRefs(rt.namespace_(), rt.rules(0).backend_refs(), &split.backends);
        services[it->second].splits.push_back(std::move(split));
      }
    } else if (r.has_http_route()) {
      // Several HTTPRoutes may share a parent: their rules are merged (the matcher orders them by precedence).
      const auto& rt = r.http_route();
      for (const auto& parent : rt.parent_refs()) {
        std::string pns = parent.namespace_().empty() ? rt.namespace_() : parent.namespace_();
        auto it = by_key.find(pns + "/" + parent.name());
        if (it == by_key.end() || parent.port() > 65535) continue;
        HttpRouting routing;
        routing.port = static_cast<uint16_t>(parent.port());
        for (int i = 0; i < rt.rules_size(); ++i) {
          routing.rules.push_back(ToHttpRule(rt, i));
          ApplyRoutePolicies(route_policies, "HTTPRoute/" + rt.namespace_() + "/" + rt.name(), rt.rules(i).name(),
                             &routing.rules.back());
        }
        services[it->second].http_routes.push_back(std::move(routing));
      }
    } else if (r.has_grpc_route()) {
      const auto& rt = r.grpc_route();
      for (const auto& parent : rt.parent_refs()) {
        std::string pns = parent.namespace_().empty() ? rt.namespace_() : parent.namespace_();
        auto it = by_key.find(pns + "/" + parent.name());
        if (it == by_key.end() || parent.port() > 65535) continue;
        HttpRouting routing;
        routing.port = static_cast<uint16_t>(parent.port());
        for (int i = 0; i < rt.rules_size(); ++i) {
          routing.rules.push_back(ToGrpcRule(rt, i));
          ApplyRoutePolicies(route_policies, "GRPCRoute/" + rt.namespace_() + "/" + rt.name(), rt.rules(i).name(),
                             &routing.rules.back());
        }
        services[it->second].grpc_routes.push_back(std::move(routing));
      }
    }
  }
  *out = std::move(services);
  return true;
}

}  // namespace zm::agent::control
