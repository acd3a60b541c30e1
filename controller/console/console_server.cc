#include "controller/console/console_server.h"

#include <future>

#include "controller/console/assets.h"

namespace zm::ctrl::console {

ConsoleServer::ConsoleServer(std::string addr, ConsoleBackend backend)
    : addr_(std::move(addr)), api_(std::move(backend)) {}

ConsoleServer::~ConsoleServer() {
  Stop();
}

bool ConsoleServer::Start(std::string* error) {
  server_ = std::make_unique<http::HttpServer>(
      "console", addr_,
      [this](const http::HttpRequest& req) {
        // civetweb runs handlers on small (100 KB) thread stacks; compiling policies and building JSON for a large
        // mesh wants more, so each request runs on a thread with the default stack.
        return std::async(std::launch::async, [this, &req] { return Serve(req); }).get();
      },
      kMaxBody);
  if (!server_->Start(error)) {
    server_.reset();
    return false;
  }
  return true;
}

void ConsoleServer::Stop() {
  if (server_) server_->Stop();
  server_.reset();
}

http::HttpResponse ConsoleServer::Asset(const http::HttpRequest& req) const {
  if (req.method != "GET" && req.method != "HEAD") return JsonError(405, "the console's pages take GET");
  const console::Asset* a = FindAsset(req.path);
  if (a == nullptr) return {404, "text/plain; charset=utf-8", "not found\n"};
  return {200, std::string(a->content_type), std::string(a->body)};
}

http::HttpResponse ConsoleServer::Serve(const http::HttpRequest& req) const {
  http::HttpResponse r = req.path.compare(0, 5, "/api/") == 0 ? api_.Handle(req) : Asset(req);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                         "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  return r;
}

}  // namespace zm::ctrl::console
