// The controller's admin endpoints (common/http), on two listeners:
//   metrics_addr (default 0.0.0.0:15015, for Prometheus and kubelet probes): /metrics /healthz /readyz
//   admin_addr   (default 127.0.0.1:15014, local only):                     the same + /debug/config_dump
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/http/http_server.h"

namespace zm::ctrl {

struct AdminSources {
  std::function<std::string()> metrics;                 // Prometheus text format
  std::function<std::vector<std::string>()> not_ready;  // empty = ready; else what is missing
  std::function<std::string()> role;                    // optional: appended to "ready" (e.g. "standby: ...")
  std::function<nlohmann::json()> config_dump;
};

class AdminEndpoints {
 public:
  AdminEndpoints(std::string metrics_addr, std::string admin_addr, AdminSources sources);
  ~AdminEndpoints();

  // Starts the listeners whose address is not empty; false with every failure in *error.
  bool Start(std::string* error);
  void Stop();
  uint16_t metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }

 private:
  std::map<std::string, http::HttpHandler> PublicRoutes() const;

  std::string metrics_addr_;
  std::string admin_addr_;
  AdminSources src_;
  std::unique_ptr<http::HttpServer> metrics_;
  std::unique_ptr<http::HttpServer> admin_;
};

}  // namespace zm::ctrl
