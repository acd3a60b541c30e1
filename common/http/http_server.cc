#include "common/http/http_server.h"

#include <civetweb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/http/status_reason.h"
#include "common/log.h"
#include "common/net/ip_addr.h"

namespace zm::http {
namespace {

int LogMessage(const mg_connection*, const char* message) {
  log::Warn("admin http", {{"error", message}});
  return 1;  // handled: civetweb prints nothing itself
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

std::string HttpRequest::QueryParam(const std::string& name) const {
  std::vector<char> out(query.size() + 1);
  int n = mg_get_var(query.data(), query.size(), name.c_str(), out.data(), out.size());
  return n < 0 ? "" : std::string(out.data(), static_cast<size_t>(n));
}

namespace {

struct ListenAddr {
  net::IpAddr ip;
  std::string port;
  bool any6 = false;  // "[::]:port"
};

std::optional<ListenAddr> ParseListenAddr(const std::string& addr, std::string* error) {
  size_t colon = addr.rfind(':');
  std::string host = colon == std::string::npos ? "" : addr.substr(0, colon);
  std::string port = colon == std::string::npos ? "" : addr.substr(colon + 1);
  bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  auto ip = net::IpAddr::Parse(bracketed ? std::string_view(host).substr(1, host.size() - 2) : host);
  bool ok = ip && ip->is_v6() == bracketed && !port.empty() && port.size() <= 5 &&
            port.find_first_not_of("0123456789") == std::string::npos && std::stoul(port) <= 65535;
  if (!ok) {
    *error = "want IPv4:port, [IPv6]:port or [::]:port (both families), got \"" + addr + "\"";
    return std::nullopt;
  }
  return ListenAddr{*ip, port, bracketed && *ip == *net::IpAddr::Parse("::")};
}

// No IPv6 on this node: the kernel has none (ipv6.disable=1: no sysctl, no AF_INET6 sockets) or it is disabled.
bool Ipv6Unavailable(const std::string& sysctl) {
  std::ifstream f(sysctl);
  char c = '1';
  if (!f.get(c) || c == '1') return true;
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  close(fd);
  return false;
}

}  // namespace

bool ValidListenAddr(const std::string& addr, std::string* error) {
  return ParseListenAddr(addr, error).has_value();
}

HttpServer::HttpServer(std::string name, std::string addr, std::map<std::string, HttpHandler> routes)
    : name_(std::move(name)), addr_(std::move(addr)), routes_(std::move(routes)) {}

HttpServer::HttpServer(std::string name, std::string addr, RequestHandler handler, size_t max_body)
    : name_(std::move(name)), addr_(std::move(addr)), handler_(std::move(handler)), max_body_(max_body) {}

HttpServer::~HttpServer() {
  Stop();
}

bool HttpServer::Start(std::string* error) {
  static std::once_flag library;
  std::call_once(library, [] { mg_init_library(0); });
  auto listen = ParseListenAddr(addr_, error);
  if (!listen) return false;
  // civetweb's listening_ports: "+port" is one dual-stack socket (IPV6_V6ONLY off); "[v6]:port" sets IPV6_V6ONLY.
  std::string listening = listen->ip.is_v4() ? addr_ : "[" + listen->ip.ToString() + "]:" + listen->port;
  if (listen->any6 && Ipv6Unavailable(ipv6_disabled_sysctl_)) {
    log::Info("admin http: no IPv6 on this node, listening on IPv4 only", {{"server", name_}, {"addr", addr_}});
    listening = "0.0.0.0:" + listen->port;
  } else if (listen->any6) {
    listening = "+" + listen->port;
  }
  // The route form serves a few endpoints answered from memory (probes, scrapes): one worker each, since every
  // civetweb thread costs the agent resident memory (issue 19's RSS goal). The request form (console) keeps two.
  const char* workers = handler_ ? "2" : "1";
  const char* options[] = {"listening_ports", listening.c_str(),   "num_threads", workers, "request_timeout_ms",
                           "10000",           "enable_keep_alive", "no",          nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = LogMessage;
  mg_init_data init{&callbacks, this, options};
  char text[256] = "";
  unsigned code = 0;
  mg_error_data err{&code, text, sizeof(text)};
  ctx_ = mg_start2(&init, &err);
  if (ctx_ == nullptr) {
    *error = std::string("cannot serve on ") + addr_ + ": " + (text[0] ? text : "civetweb failed to start");
    return false;
  }
  mg_set_request_handler(ctx_, "/", &HttpServer::OnRequest, this);
  mg_server_port ports[1]{};
  if (mg_get_server_ports(ctx_, 1, ports) >= 1) port_ = static_cast<uint16_t>(ports[0].port);
  return true;
}

void HttpServer::Stop() {
  if (ctx_) mg_stop(ctx_);
  ctx_ = nullptr;
}

int HttpServer::OnRequest(mg_connection* conn, void* self) {
  return static_cast<HttpServer*>(self)->Handle(conn);
}

HttpResponse HttpServer::HandleRequest(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  HttpRequest req;
  req.method = ri->request_method;
  req.path = ri->local_uri ? ri->local_uri : "";
  req.query = ri->query_string ? ri->query_string : "";
  req.remote_addr = ri->remote_addr;
  // An IPv4 client of a dual-stack listener arrives as "::ffff:a.b.c.d": give its IPv4 address, as on an IPv4 one.
  if (auto ip = net::IpAddr::Parse(req.remote_addr)) req.remote_addr = ip->ToString();
  for (int i = 0; i < ri->num_headers; ++i) req.headers[Lower(ri->http_headers[i].name)] = ri->http_headers[i].value;
  auto too_large = [this] {
    return HttpResponse{413, "application/json",
                        "{\"error\":\"request body over " + std::to_string(max_body_) + " bytes\"}\n"};
  };
  if (ri->content_length > static_cast<long long>(max_body_)) return too_large();
  char buf[4096];
  for (int n; (n = mg_read(conn, buf, sizeof(buf))) > 0;) {
    if (req.body.size() + static_cast<size_t>(n) > max_body_) return too_large();
    req.body.append(buf, static_cast<size_t>(n));
  }
  try {
    return handler_(req);
  } catch (const std::exception& e) {  // a bad request must never take the controller down
    log::Warn("http handler failed", {{"server", name_}, {"path", req.path}, {"error", e.what()}});
    return {500, "application/json", "{\"error\":\"internal error\"}\n"};
  }
}

int HttpServer::Handle(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  HttpResponse resp;
  bool head = std::strcmp(ri->request_method, "HEAD") == 0;
  auto it = routes_.find(ri->local_uri ? ri->local_uri : "");
  if (handler_) {
    resp = HandleRequest(conn);
  } else if (!head && std::strcmp(ri->request_method, "GET") != 0) {
    resp = {405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
  } else if (it == routes_.end()) {
    std::string list;
    for (const auto& [path, h] : routes_) list += path + "\n";
    resp = {404, "text/plain; charset=utf-8", "not found; endpoints:\n" + list};
  } else {
    try {
      resp = it->second();
    } catch (const std::exception& e) {  // a bad dump must never take the agent down
      resp = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
    }
  }
  // Built here and written with mg_write rather than mg_printf: Debian's civetweb runs handlers on 100 KB thread
  // stacks, and mg_printf's vsnprintf (with ASan's interceptor on top) overflowed one in the sanitized cluster tests.
  std::string headers = "HTTP/1.1 " + std::to_string(resp.status) + " " + StatusReason(resp.status) +
                        "\r\nContent-Type: " + resp.content_type +
                        "\r\nContent-Length: " + std::to_string(resp.body.size()) +
                        "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  for (const auto& [name, value] : resp.headers) headers += name + ": " + value + "\r\n";
  headers += "\r\n";
  mg_write(conn, headers.data(), headers.size());
  if (!head) mg_write(conn, resp.body.data(), resp.body.size());
  return resp.status;  // civetweb: a status code means "handled"
}

void StartOptional(std::unique_ptr<HttpServer>& server, const char* name, const std::string& addr,
                   std::map<std::string, HttpHandler> routes, std::string* errors) {
  if (addr.empty()) return;
  server = std::make_unique<HttpServer>(name, addr, std::move(routes));
  std::string e;
  if (!server->Start(&e)) {
    *errors += (errors->empty() ? "" : "; ") + std::string(name) + ": " + e;
    server.reset();
  }
}

void StopTogether(std::initializer_list<HttpServer*> servers) {
  std::vector<std::thread> stopping;
  for (HttpServer* s : servers) {
    if (s != nullptr) stopping.emplace_back([s] { s->Stop(); });
  }
  for (auto& t : stopping) t.join();
}

}  // namespace zm::http
