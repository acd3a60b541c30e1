// The console's JSON API as a signed-in user (any valid token, including a read-only one, reaches it): the query
// strings of the policy questions and the JSON bodies of the wizard's steps, into ConsoleApi::Handle over a small
// mesh. Applying writes into a private scratch directory. Input: byte 0 picks the route, byte 1 the user (writer or
// reader) and whether an Origin is sent; then "query\nbody".
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "controller/console/console_api.h"
#include "tests/unit/console/mesh_fixture.h"

namespace {

using namespace zm::ctrl::console;

class AnyUser : public ConsoleAuth {
 public:
  AuthResult Authenticate(const std::string& token) const override { return {0, "", {"fuzz", token == "writer"}}; }
  const char* mode() const override { return "universal"; }
};

struct Fixture {
  AnyUser auth;
  std::string dir;
  std::unique_ptr<ConsoleApi> api;
  std::vector<std::pair<std::string, std::string>> routes;

  Fixture() {
    char tmpl[] = "/tmp/zm-fuzz-console-XXXXXX";
    dir = mkdtemp(tmpl);
    ConsoleBackend b;
    b.auth = &auth;
    b.inputs = [] { return testing::SmallMesh(); };
    b.sink.dir = dir;
    b.sink.reload = [] {};
    b.sink.errors_in = [](const std::string&) { return std::vector<std::string>{}; };
    api = std::make_unique<ConsoleApi>(std::move(b));
    routes = api->Routes();
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;  // destroyed at exit: the scratch directory goes with it
  Fixture* f = &fixture;
  if (size < 2) return 0;
  const auto& [method, path] = f->routes[data[0] % f->routes.size()];
  std::string rest(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t nl = rest.find('\n');
  zm::http::HttpRequest req;
  req.method = (data[1] & 4) ? "PUT" : method;
  req.path = path;
  req.query = rest.substr(0, nl);
  req.body = nl == std::string::npos ? "" : rest.substr(nl + 1);
  req.headers["host"] = "127.0.0.1:15080";
  req.headers["authorization"] = std::string("Bearer ") + ((data[1] & 1) ? "writer" : "reader");
  req.headers["content-type"] = "application/json";
  if (data[1] & 2) req.headers["origin"] = req.query;
  auto resp = f->api->Handle(req);
  if (resp.status < 200 || resp.status > 599 || resp.body.empty()) __builtin_trap();
  return 0;
}
