#include "controller/console/console_api.h"

#include <charconv>

#include "controller/console/body_fields.h"
#include "controller/console/mesh_views.h"
#include "controller/console/policy_queries.h"
#include "controller/console/wizard.h"
#include "tools/meshctl/status_report.h"
#include "tools/meshctl/views.h"

namespace zm::ctrl::console {

using nlohmann::json;

http::HttpResponse JsonResponse(int status, const json& body) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

http::HttpResponse JsonError(int status, const std::string& why) {
  return JsonResponse(status, {{"error", why}});
}

namespace {

bool ParsePort(const std::string& s, uint16_t* port) {
  if (s.empty()) return true;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *port);
  return ec == std::errc() && end == s.data() + s.size();
}

std::string BearerToken(const http::HttpRequest& req) {
  const std::string h = req.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (h.size() <= kBearer.size() || h.compare(0, kBearer.size(), kBearer) != 0) return "";
  return h.substr(kBearer.size());
}

// A browser's cross-site POST carries the attacker's Origin: refuse it (tokens are never in cookies, so it could
// not authenticate anyway; this is the second lock).
bool SameOrigin(const http::HttpRequest& req) {
  const std::string origin = req.Header("origin");
  if (origin.empty()) return true;  // not a browser (curl, meshctl)
  const std::string host = req.Header("host");
  return !host.empty() && (origin == "http://" + host || origin == "https://" + host);
}

}  // namespace

ConsoleApi::ConsoleApi(ConsoleBackend backend) : b_(std::move(backend)) {
  auto get = [](Handler h) { return Route{"GET", std::move(h)}; };
  auto post = [](Handler h) { return Route{"POST", std::move(h)}; };
  routes_["/api/session"] = get([this](const Call& c) {
    MeshInputs in = b_.inputs();
    return JsonResponse(200, {{"user", c.user.name},
                              {"mode", b_.auth->mode()},
                              // may_write: the user's rights; can_write: what the console will apply for them
                              // (Kubernetes mode: nothing yet, the wizard hands out kubectl commands).
                              {"may_write", c.user.can_write},
                              {"can_write", c.user.can_write && (!b_.sink.dir.empty() || b_.kube != nullptr)},
                              {"trust_domain", DefaultsOf(in.resources).trust_domain}});
  });
  routes_["/api/overview"] = get([this](const Call&) {
    MeshInputs in = b_.inputs();
    meshctl::StatusInput si;
    si.controller = "this controller";
    si.reachable = true;
    si.status = std::move(in.status);
    si.resources = std::move(in.resources);
    si.now_unix = in.now_unix;
    return JsonResponse(200, meshctl::BuildStatus(si));
  });
  routes_["/api/workloads"] = get([this](const Call&) { return JsonResponse(200, WorkloadsView(b_.inputs())); });
  routes_["/api/namespaces"] = get([this](const Call&) { return JsonResponse(200, NamespacesView(b_.inputs())); });
  routes_["/api/services"] = get([this](const Call&) { return JsonResponse(200, ServicesView(b_.inputs())); });
  routes_["/api/traffic"] = get([this](const Call&) { return JsonResponse(200, TrafficView(b_.inputs())); });
  routes_["/api/policies"] = get([this](const Call&) {
    MeshInputs in = b_.inputs();
    std::string error;
    auto q = PolicyQueries::Build(in.resources, &error);
    if (!q) return JsonError(503, "no usable configuration yet: " + error);
    const MeshDefaults d = DefaultsOf(in.resources);
    json permissions = json::array();
    for (const auto& r : in.resources.resources()) {
      if (!r.has_traffic_permission()) continue;
      const auto& p = r.traffic_permission();
      permissions.push_back(meshctl::ProtoJson(p));
    }
    return JsonResponse(200, {{"default_policy", d.default_policy == zeromesh::v1::DENY ? "DENY" : "ALLOW"},
                              {"default_mode", ModeName(d.default_mode)},
                              {"permissions", permissions},
                              {"effective", q->Effective()},
                              {"effective_limit", PolicyQueries::kMaxEffective}});
  });
  auto query = [this](bool reach) {
    return [this, reach](const Call& c) {
      uint16_t port = 0;
      if (!ParsePort(c.req.QueryParam("port"), &port)) return JsonError(400, "\"port\" must be 0..65535");
      const std::string to = c.req.QueryParam("to"), from = c.req.QueryParam("from");
      if (to.empty() || (reach && from.empty())) {
        return JsonError(400, reach ? "give from=ns/name|IPv4 and to=ns/name" : "give to=ns/name");
      }
      MeshInputs in = b_.inputs();
      std::string error;
      auto q = PolicyQueries::Build(in.resources, &error);
      if (!q) return JsonError(503, "no usable configuration yet: " + error);
      json out = reach ? q->Reach(from, to, port, &error) : q->Who(to, port, &error);
      return out.is_null() ? JsonError(404, error) : JsonResponse(200, out);
    };
  };
  routes_["/api/policies/reach"] = get(query(true));
  routes_["/api/policies/who"] = get(query(false));
  auto step = [this](StepResult (Wizard::*fn)(const json&) const) {
    return [this, fn](const Call& c) {
      bool apply = false;
      std::string error;
      if (!OptionalBool(c.body, "apply", &apply, &error)) return JsonError(400, error);
      if (apply && !c.user.can_write) {
        return JsonError(403, c.user.name +
                                  " may read but not write: ask for a token that may (universal mode: "
                                  "the \"admin\" join token; Kubernetes: create trafficpermissions)");
      }
      MeshInputs in = b_.inputs();
      ManifestSink sink = b_.sink;
      if (sink.dir.empty() && b_.kube != nullptr) {
        const KubeApplier* kube = b_.kube;
        const std::string token = c.token;
        sink.kube_apply = [kube, token](const std::string& manifest) { return kube->Apply(token, manifest); };
        sink.namespace_labels = [kube, token](const std::string& ns) { return kube->NamespaceLabels(token, ns); };
      }
      Wizard w(in, sink);
      StepResult r = (w.*fn)(c.body);
      return JsonResponse(r.status, r.body);
    };
  };
  routes_["/api/wizard/enroll"] = post(step(&Wizard::Enroll));
  routes_["/api/wizard/mode"] = post(step(&Wizard::Mode));
  routes_["/api/wizard/policy"] = post(step(&Wizard::Policy));
  routes_["/api/wizard/canary"] = post(step(&Wizard::Canary));
}

std::vector<std::pair<std::string, std::string>> ConsoleApi::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [path, r] : routes_) out.emplace_back(r.method, path);
  return out;
}

http::HttpResponse ConsoleApi::Handle(const http::HttpRequest& req) const {
  // Authentication first: an unauthenticated caller learns nothing, not even which routes exist.
  const std::string token = BearerToken(req);
  if (token.empty()) {
    auto r = JsonError(401, "send Authorization: Bearer <token>");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"zeromesh console\"");
    return r;
  }
  AuthResult auth = b_.auth->Authenticate(token);
  if (auth.status != 0) {
    auto r = JsonError(auth.status, auth.error);
    if (auth.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"zeromesh console\"");
    return r;
  }
  auto it = routes_.find(req.path);
  if (it == routes_.end()) return JsonError(404, "no API route " + req.path);
  if (req.method != it->second.method) {
    auto r = JsonError(405, req.path + " takes " + it->second.method);
    r.headers.emplace_back("Allow", it->second.method);
    return r;
  }
  json body;
  if (req.method == "POST") {
    if (!SameOrigin(req)) return JsonError(403, "cross-origin request refused");
    const std::string type = req.Header("content-type");
    if (type.compare(0, 16, "application/json") != 0) return JsonError(415, "send Content-Type: application/json");
    body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return JsonError(400, "the body is not a JSON object");
  }
  return it->second.handler(Call{req, auth.user, token, std::move(body)});
}

}  // namespace zm::ctrl::console
