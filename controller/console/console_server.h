// mesh-controller's console listener (--console-addr; off unless set): the single-page app built into the binary
// (ui/, embedded as zm_console_assets) and its JSON API (console_api.h). Nothing is read from disk or fetched at run
// time; every response forbids framing and sniffing, and the page may load only its own scripts.
#pragma once

#include <memory>
#include <string>

#include "common/http/http_server.h"
#include "controller/console/console_api.h"

namespace zm::ctrl::console {

class ConsoleServer {
 public:
  ConsoleServer(std::string addr, ConsoleBackend backend);
  ~ConsoleServer();

  bool Start(std::string* error);
  void Stop();
  uint16_t port() const { return server_ ? server_->port() : 0; }

  static constexpr size_t kMaxBody = 64 * 1024;  // wizard requests are a few hundred bytes

 private:
  http::HttpResponse Serve(const http::HttpRequest& req) const;
  http::HttpResponse Asset(const http::HttpRequest& req) const;

  std::string addr_;
  ConsoleApi api_;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace zm::ctrl::console
