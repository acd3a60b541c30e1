// The agent's admin endpoints, on three listeners:
//   health_addr  (default 0.0.0.0:15021, the kubelet's probes):                    /healthz /readyz
//   metrics_addr (default 0.0.0.0:15020, Prometheus):                              /metrics /healthz /readyz
//   admin_addr   (default 127.0.0.1:15000, node-local only, pods cannot reach it): the same + /debug/config_dump
//                                                                                  /debug/certs
// The probes have their own listener and threads: slow or stalled scrapes of /metrics cannot starve them (and get the
// agent restarted by its liveness probe).
// The server only formats; what it reports comes from the callbacks (wired in agent/node).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/admin/readiness.h"
#include "common/http/http_server.h"

namespace zm::admin {

using http::HttpHandler;
using http::HttpResponse;
using http::HttpServer;
using http::ValidListenAddr;

inline constexpr const char* kDefaultHealthAddr = "0.0.0.0:15021";

struct AdminOptions {
  std::string metrics_addr = "0.0.0.0:15020";  // "" disables
  std::string admin_addr = "127.0.0.1:15000";  // "" disables
  std::string health_addr;                     // "" disables; mesh-agent's default is kDefaultHealthAddr
};

struct AdminSources {
  std::function<std::string()> metrics;  // Prometheus text format
  std::function<Readiness()> readiness;
  std::function<nlohmann::json()> config_dump;
  std::function<nlohmann::json()> certs;
};

class AdminServer {
 public:
  AdminServer(AdminOptions opts, AdminSources sources);
  ~AdminServer();

  // Starts what it can; false (with every failure in *error) when a listener could not start.
  bool Start(std::string* error);
  void Stop();
  uint16_t health_port() const { return health_ ? health_->port() : 0; }
  uint16_t metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }

 private:
  std::map<std::string, HttpHandler> ProbeRoutes() const;
  std::map<std::string, HttpHandler> PublicRoutes() const;  // the probes and /metrics

  AdminOptions opts_;
  AdminSources src_;
  std::unique_ptr<HttpServer> health_;
  std::unique_ptr<HttpServer> metrics_;
  std::unique_ptr<HttpServer> admin_;
};

}  // namespace zm::admin
