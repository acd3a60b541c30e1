#include "controller/admin/admin_endpoints.h"

namespace zm::ctrl {

AdminEndpoints::AdminEndpoints(std::string metrics_addr, std::string admin_addr, AdminSources sources)
    : metrics_addr_(std::move(metrics_addr)), admin_addr_(std::move(admin_addr)), src_(std::move(sources)) {}

AdminEndpoints::~AdminEndpoints() {
  Stop();
}

std::map<std::string, http::HttpHandler> AdminEndpoints::PublicRoutes() const {
  constexpr const char* kText = "text/plain; charset=utf-8";
  return {
      {"/metrics",
       [this] {
         return http::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", src_.metrics()};
       }},
      {"/healthz",
       [] {
         return http::HttpResponse{200, kText, "ok\n"};
       }},
      {"/readyz",
       [this] {
         auto missing = src_.not_ready();
         if (missing.empty()) {
           std::string role = src_.role ? src_.role() : "";
           return http::HttpResponse{200, kText, role.empty() ? "ready\n" : "ready (" + role + ")\n"};
         }
         std::string body = "not ready:\n";
         for (const auto& m : missing) body += "- " + m + "\n";
         return http::HttpResponse{503, kText, body};
       }},
  };
}

bool AdminEndpoints::Start(std::string* error) {
  std::string errors;
  http::StartOptional(metrics_, "metrics", metrics_addr_, PublicRoutes(), &errors);
  auto routes = PublicRoutes();
  routes["/debug/config_dump"] = [this] {
    return http::HttpResponse{200, "application/json",
                              src_.config_dump().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
  };
  http::StartOptional(admin_, "admin", admin_addr_, std::move(routes), &errors);
  if (!errors.empty()) *error = errors;
  return errors.empty();
}

void AdminEndpoints::Stop() {
  // civetweb takes a second or more to stop a listener: stop both at once so that the controller exits promptly.
  http::StopTogether({metrics_.get(), admin_.get()});
}

}  // namespace zm::ctrl
