#include "agent/admin/admin_server.h"

#include <thread>

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
  auto start = [&errors](std::unique_ptr<HttpServer>& server, const char* name, const std::string& addr,
                         std::map<std::string, HttpHandler> routes) {
    if (addr.empty()) return;
    server = std::make_unique<HttpServer>(name, addr, std::move(routes));
    std::string e;
    if (!server->Start(&e)) {
      errors += (errors.empty() ? "" : "; ") + std::string(name) + ": " + e;
      server.reset();
    }
  };
  start(health_, "health", opts_.health_addr, ProbeRoutes());
  start(metrics_, "metrics", opts_.metrics_addr, PublicRoutes());
  auto routes = PublicRoutes();
  routes["/debug/config_dump"] = [this] { return Json(src_.config_dump()); };
  routes["/debug/certs"] = [this] { return Json(src_.certs()); };
  start(admin_, "admin", opts_.admin_addr, std::move(routes));
  if (!errors.empty()) *error = errors;
  return errors.empty();
}

void AdminServer::Stop() {
  // Side by side: each civetweb server takes up to ~2 s to stop (its listener poll interval).
  std::thread health([this] {
    if (health_) health_->Stop();
  });
  std::thread metrics([this] {
    if (metrics_) metrics_->Stop();
  });
  if (admin_) admin_->Stop();
  metrics.join();
  health.join();
}

}  // namespace zm::admin
