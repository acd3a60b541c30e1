#include "agent/admin/admin_server.h"

namespace zm::admin {
namespace {

HttpResponse Json(const nlohmann::json& j) {
  return {200, "application/json", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
}

}  // namespace

AdminServer::AdminServer(AdminOptions opts, AdminSources sources) : opts_(std::move(opts)), src_(std::move(sources)) {}

AdminServer::~AdminServer() {
  Stop();
}

std::map<std::string, HttpHandler> AdminServer::ProbeRoutes() const {
  return {
      {"/healthz",
       [] {
         return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
       }},
      {"/readyz",
       [this] {
         Readiness r = src_.readiness();
         if (r.ready()) return HttpResponse{200, "text/plain; charset=utf-8", "ready\n"};
         std::string body = "not ready:\n";
         for (const auto& m : r.missing()) body += "- " + m + "\n";
         return HttpResponse{503, "text/plain; charset=utf-8", body};
       }},
  };
}

std::map<std::string, HttpHandler> AdminServer::PublicRoutes() const {
  auto routes = ProbeRoutes();
  routes["/metrics"] = [this] { return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", src_.metrics()}; };
  return routes;
}

bool AdminServer::Start(std::string* error) {
  std::string errors;
  http::StartOptional(health_, "health", opts_.health_addr, ProbeRoutes(), &errors);
  http::StartOptional(metrics_, "metrics", opts_.metrics_addr, PublicRoutes(), &errors);
  auto routes = PublicRoutes();
  routes["/debug/config_dump"] = [this] { return Json(src_.config_dump()); };
  routes["/debug/certs"] = [this] { return Json(src_.certs()); };
  http::StartOptional(admin_, "admin", opts_.admin_addr, std::move(routes), &errors);
  if (!errors.empty()) *error = errors;
  return errors.empty();
}

void AdminServer::Stop() {
  http::StopTogether({health_.get(), metrics_.get(), admin_.get()});
}

}  // namespace zm::admin
