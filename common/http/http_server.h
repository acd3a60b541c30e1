// A small HTTP/1.1 server for the admin endpoints of the agent and the controller, and for the controller's console,
// on civetweb. Why civetweb and not an epoll loop of our own: it is already on every machine that has prometheus-cpp
// (its Exposer runs on it), it parses HTTP properly (partial reads, pipelining, timeouts, slow clients), and its own
// small thread pool keeps scrapes and debug dumps off the proxy's event loops. Admin form: exact-path routes, GET and
// HEAD only. Request form (the console): one handler sees every method, header and a bounded body. Nothing is served
// from disk.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct mg_context;
struct mg_connection;

namespace zm::http {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // extra response headers
};

struct HttpRequest {
  std::string method;
  std::string path;                            // decoded path, without the query
  std::string query;                           // raw, without '?'
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote_addr;

  std::string Header(const std::string& lower_name) const;  // "" when absent
  std::string QueryParam(const std::string& name) const;    // URL-decoded; "" when absent
};

using HttpHandler = std::function<HttpResponse()>;
using RequestHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  // |addr| is a listen address (see ValidListenAddr; port 0: any free port, see port()). Handlers run on civetweb's
  // threads.
  HttpServer(std::string name, std::string addr, std::map<std::string, HttpHandler> routes);
  // Request form: |handler| gets every request; bodies over |max_body| bytes are refused with 413.
  HttpServer(std::string name, std::string addr, RequestHandler handler, size_t max_body);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  bool Start(std::string* error);
  // Where "IPv6 is disabled" is read for a "[::]:port" listener (before Start; tests point it at a file of theirs).
  void set_ipv6_disabled_sysctl(std::string path) { ipv6_disabled_sysctl_ = std::move(path); }
  void Stop();
  uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }

 private:
  static int OnRequest(mg_connection* conn, void* self);
  int Handle(mg_connection* conn);
  HttpResponse HandleRequest(mg_connection* conn);

  std::string name_;
  std::string addr_;
  std::map<std::string, HttpHandler> routes_;
  RequestHandler handler_;
  size_t max_body_ = 0;
  std::string ipv6_disabled_sysctl_ = "/proc/sys/net/ipv6/conf/all/disable_ipv6";
  mg_context* ctx_ = nullptr;
  uint16_t port_ = 0;
};

// Starts |server| on |addr| unless |addr| is empty (that listener is off). A failure is appended to |errors|
// ("name: why", "; "-separated) and leaves |server| empty.
void StartOptional(std::unique_ptr<HttpServer>& server, const char* name, const std::string& addr,
                   std::map<std::string, HttpHandler> routes, std::string* errors);

// Stops the servers given (null ones are skipped) side by side: civetweb takes up to ~2 s to stop each (its listener
// poll interval), so one after the other would add up.
void StopTogether(std::initializer_list<HttpServer*> servers);

// A listen address: "a.b.c.d:port" (IPv4), "[v6]:port" (that IPv6 address only) or "[::]:port": every address of both
// families (one dual-stack socket; IPv4 alone on a node without IPv6). No host names, port 0..65535. False (and why in
// |error|) for anything else.
bool ValidListenAddr(const std::string& addr, std::string* error);

}  // namespace zm::http
