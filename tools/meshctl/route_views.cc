#include "tools/meshctl/route_views.h"

#include "tools/meshctl/output.h"

namespace zm::meshctl {

namespace v1 = zeromesh::v1;
using nlohmann::json;

namespace {

std::string Ns(const std::string& ref_ns, const std::string& route_ns) {
  return ref_ns.empty() ? route_ns : ref_ns;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// Gateway API's spelling of a string match: "=v" exact, "v*" prefix, "~re" regex.
std::string Match(const v1::StringMatch& m) {
  switch (m.type()) {
    case v1::MATCH_PREFIX:
      return m.value() + "*";
    case v1::MATCH_REGEX:
      return "~" + m.value();
    default:
      return m.value();
  }
}

std::string HttpMatch(const v1::HttpRouteMatch& m) {
  std::vector<std::string> parts;
  if (!m.method().empty()) parts.push_back(m.method());
  if (m.has_path()) parts.push_back(Match(m.path()));
  for (const auto& h : m.headers()) parts.push_back(h.name() + (h.type() == v1::MATCH_REGEX ? "" : "=") + Match(h));
  for (const auto& q : m.query_params()) {
    parts.push_back("?" + q.name() + (q.type() == v1::MATCH_REGEX ? "" : "=") + Match(q));
  }
  return parts.empty() ? "*" : Join(parts, " ");
}

std::string GrpcMatch(const v1::GrpcRouteMatch& m) {
  std::vector<std::string> parts;
  if (m.has_method()) {
    const auto& mm = m.method();
    const std::string re = mm.type() == v1::MATCH_REGEX ? "~" : "";
    parts.push_back((mm.service().empty() ? "*" : re + mm.service()) + "/" +
                    (mm.method().empty() ? "*" : re + mm.method()));
  }
  for (const auto& h : m.headers()) parts.push_back(h.name() + (h.type() == v1::MATCH_REGEX ? "" : "=") + Match(h));
  return parts.empty() ? "*" : Join(parts, " ");
}

json Backends(const google::protobuf::RepeatedPtrField<v1::BackendRef>& refs, const std::string& route_ns) {
  uint64_t total = 0;
  for (const auto& b : refs) total += b.weight();
  json out = json::array();
  for (const auto& b : refs) {
    out.push_back({{"service", Ns(b.namespace_(), route_ns) + "/" + b.name()},
                   {"port", b.port()},
                   {"weight", b.weight()},
                   {"share_percent", total == 0 ? 0.0 : 100.0 * b.weight() / static_cast<double>(total)}});
  }
  return out;
}

json Filters(const google::protobuf::RepeatedPtrField<v1::HttpRouteFilter>& filters, const std::string& route_ns) {
  json out = json::array();
  for (const auto& f : filters) {
    if (f.has_request_header_modifier()) {
      out.push_back({{"type", "RequestHeaderModifier"}});
    } else if (f.has_response_header_modifier()) {
      out.push_back({{"type", "ResponseHeaderModifier"}});
    } else if (f.has_url_rewrite()) {
      out.push_back(
          {{"type", "URLRewrite"}, {"hostname", f.url_rewrite().hostname()}, {"path", f.url_rewrite().path()}});
    } else if (f.has_request_mirror()) {
      const auto& m = f.request_mirror();
      out.push_back({{"type", "RequestMirror"},
                     {"service", Ns(m.backend().namespace_(), route_ns) + "/" + m.backend().name()},
                     {"percent", m.percent()}});
    }
  }
  return out;
}

json Parents(const google::protobuf::RepeatedPtrField<v1::ParentRef>& parents, const std::string& route_ns) {
  json out = json::array();
  for (const auto& p : parents) {
    out.push_back({{"service", Ns(p.namespace_(), route_ns) + "/" + p.name()}, {"port", p.port()}});
  }
  return out;
}

}  // namespace

std::string ProtocolName(v1::AppProtocol p) {
  switch (p) {
    case v1::APP_HTTP:
      return "HTTP";
    case v1::APP_HTTP2:
      return "HTTP2";
    case v1::APP_GRPC:
      return "GRPC";
    default:
      return "TCP";
  }
}

json RoutesJson(const v1::ResourceSet& rs) {
  json out = json::array();
  for (const auto& r : rs.resources()) {
    json rules = json::array();
    if (r.has_tcp_route()) {
      const auto& t = r.tcp_route();
      for (const auto& rule : t.rules())
        rules.push_back({{"matches", json::array()}, {"backends", Backends(rule.backend_refs(), t.namespace_())}});
      out.push_back({{"kind", "TCPRoute"},
                     {"namespace", t.namespace_()},
                     {"name", t.name()},
                     {"parents", Parents(t.parent_refs(), t.namespace_())},
                     {"rules", rules}});
    } else if (r.has_http_route()) {
      const auto& h = r.http_route();
      for (const auto& rule : h.rules()) {
        json matches = json::array();
        for (const auto& m : rule.matches()) matches.push_back(HttpMatch(m));
        json j = {{"name", rule.name()},
                  {"matches", matches},
                  {"filters", Filters(rule.filters(), h.namespace_())},
                  {"backends", Backends(rule.backend_refs(), h.namespace_())},
                  {"request_timeout_ms", rule.request_timeout_ms()},
                  {"backend_request_timeout_ms", rule.backend_request_timeout_ms()}};
        if (rule.has_retry()) {
          j["retry"] = {{"attempts", rule.retry().attempts()},
                        {"codes", std::vector<uint32_t>(rule.retry().codes().begin(), rule.retry().codes().end())},
                        {"backoff_ms", rule.retry().backoff_ms()}};
        }
        rules.push_back(std::move(j));
      }
      out.push_back({{"kind", "HTTPRoute"},
                     {"namespace", h.namespace_()},
                     {"name", h.name()},
                     {"parents", Parents(h.parent_refs(), h.namespace_())},
                     {"rules", rules}});
    } else if (r.has_grpc_route()) {
      const auto& g = r.grpc_route();
      for (const auto& rule : g.rules()) {
        json matches = json::array();
        for (const auto& m : rule.matches()) matches.push_back(GrpcMatch(m));
        rules.push_back({{"name", rule.name()},
                         {"matches", matches},
                         {"filters", Filters(rule.filters(), g.namespace_())},
                         {"backends", Backends(rule.backend_refs(), g.namespace_())}});
      }
      out.push_back({{"kind", "GRPCRoute"},
                     {"namespace", g.namespace_()},
                     {"name", g.name()},
                     {"parents", Parents(g.parent_refs(), g.namespace_())},
                     {"rules", rules}});
    }
  }
  return out;
}

std::string RenderRoutes(const json& j) {
  if (j.empty()) return "no routes\n";
  // Names in the route's own namespace go without it; filters, timeouts and retries are in -o json|yaml.
  auto local = [](const std::string& ns_name, const std::string& ns) {
    return ns_name.compare(0, ns.size() + 1, ns + "/") == 0 ? ns_name.substr(ns.size() + 1) : ns_name;
  };
  Table t({"NAMESPACE", "ROUTE", "PARENT", "MATCH", "BACKENDS"});
  for (const auto& r : j) {
    const std::string ns = r["namespace"].get<std::string>();
    std::vector<std::string> parents;
    for (const auto& p : r["parents"]) {
      const uint32_t port = p["port"].get<uint32_t>();
      parents.push_back(local(p["service"].get<std::string>(), ns) + (port ? ":" + std::to_string(port) : ""));
    }
    const std::string route = r["kind"].get<std::string>() + "/" + r["name"].get<std::string>();
    for (const auto& rule : r["rules"]) {
      std::vector<std::string> matches, backends;
      for (const auto& m : rule["matches"]) matches.push_back(m.get<std::string>());
      for (const auto& b : rule["backends"]) {
        char share[16];
        snprintf(share, sizeof share, "%.0f%%", b["share_percent"].get<double>());
        backends.push_back(local(b["service"].get<std::string>(), ns) + " " + share);
      }
      t.Add({ns, route, Join(parents, ","), matches.empty() ? "*" : Join(matches, " | "),
             backends.empty() ? "<none>" : Join(backends, ", ")});
    }
  }
  return t.Render();
}

std::map<std::string, std::vector<std::string>> RoutesByParent(const v1::ResourceSet& rs) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : RoutesJson(rs)) {
    const std::string name = r["kind"].get<std::string>() + "/" + r["name"].get<std::string>();
    for (const auto& p : r["parents"]) {
      auto& list = out[p["service"].get<std::string>()];
      if (list.empty() || list.back() != name) list.push_back(name);
    }
  }
  return out;
}

}  // namespace zm::meshctl
