// The console's JSON API under /api/ (routes and shapes: docs/ui.md). Every route needs a bearer token
// (console_auth.h); writes need a user who may write, a JSON body and, when the browser sends an Origin, the
// console's own origin.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/http/http_server.h"
#include "controller/console/console_auth.h"
#include "controller/console/manifest_writer.h"
#include "controller/console/mesh_inputs.h"

namespace zm::ctrl::console {

struct ConsoleBackend {
  std::function<MeshInputs()> inputs;  // one consistent read per request
  ManifestSink sink;
  const ConsoleAuth* auth = nullptr;
  const KubeApplier* kube = nullptr;  // Kubernetes mode: applies as the signed-in user
};

class ConsoleApi {
 public:
  explicit ConsoleApi(ConsoleBackend backend);
  http::HttpResponse Handle(const http::HttpRequest& req) const;  // req.path starts with /api/

  // Every route, for the tests that prove each one refuses an unauthenticated caller.
  std::vector<std::pair<std::string, std::string>> Routes() const;  // (method, path)

 private:
  struct Call {
    const http::HttpRequest& req;
    const ConsoleUser& user;
    const std::string& token;  // the caller's bearer token: Kubernetes-mode applies are made with it
    nlohmann::json body;       // parsed POST body (null for GET)
  };
  using Handler = std::function<http::HttpResponse(const Call&)>;
  struct Route {
    const char* method;
    Handler handler;
  };

  ConsoleBackend b_;
  std::map<std::string, Route> routes_;
};

http::HttpResponse JsonResponse(int status, const nlohmann::json& body);
http::HttpResponse JsonError(int status, const std::string& why);

}  // namespace zm::ctrl::console
