// The Kubernetes HTTP client against a keep-alive fake API server on loopback: requests share one connection (no TLS
// handshake per request against a real server), and a 429 is retried after its Retry-After, a bounded number of times.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "controller/k8s/http.h"

namespace zm::k8s {
namespace {

// Serves HTTP/1.1 with keep-alive: each request (head + Content-Length body) gets `reply(n)` for the n-th request
// overall; counts connections.
class KeepAliveApi {
 public:
  using Reply = std::function<std::string(int n)>;
  explicit KeepAliveApi(Reply reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Accept(); });
  }
  ~KeepAliveApi() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  ClientConfig Config() const {
    ClientConfig c;
    c.server = "http://127.0.0.1:" + std::to_string(port_);
    c.token = "t";
    return c;
  }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void Accept() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++connections_;
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    std::string in;
    char buf[4096];
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) {
          ::close(c);
          return;
        }
        in.append(buf, static_cast<size_t>(n));
      }
      size_t body = 0;
      if (auto at = in.find("Content-Length: "); at != std::string::npos && at < end) {
        body = std::strtoul(in.c_str() + at + 16, nullptr, 10);
      }
      while (in.size() < end + 4 + body) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) {
          ::close(c);
          return;
        }
        in.append(buf, static_cast<size_t>(n));
      }
      in.erase(0, end + 4 + body);
      std::string out = reply_(requests_++);
      if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) break;
    }
    ::close(c);
  }

  Reply reply_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

std::string Ok(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string TooMany(const std::string& retry_after) {
  const std::string body = R"({"kind":"Status","code":429,"message":"too many requests"})";
  return "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n" +
         (retry_after.empty() ? "" : "Retry-After: " + retry_after + "\r\n") +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(KubeHttp, RequestsReuseTheConnection) {
  KeepAliveApi api([](int) { return Ok(R"({"kind":"Pod"})"); });
  Http http(api.Config());
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = http.Request(i % 2 ? "PUT" : "GET", "/api/v1/pods/x", i % 2 ? R"({"a":1})" : "",
                                  i % 2 ? "application/json" : "");
    ASSERT_TRUE(r.ok()) << r.Describe();
    EXPECT_EQ(r.body, R"({"kind":"Pod"})");
  }
  EXPECT_EQ(api.requests(), 20);
  EXPECT_EQ(api.connections(), 1) << "a new connection (a TLS handshake against a real API server) per request";
  Http copy = http;  // copies share the idle handles
  ASSERT_TRUE(copy.Request("GET", "/api/v1/pods/x").ok());
  EXPECT_EQ(api.connections(), 1);
}

TEST(KubeHttp, ConcurrentRequestsEachGetAConnection) {
  KeepAliveApi api([](int) { return Ok("{}"); });
  Http http(api.Config());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) ok += http.Request("GET", "/api/v1/pods").ok();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_LE(api.connections(), 4);
}

TEST(KubeHttp, A429IsRetriedAfterItsRetryAfter) {
  KeepAliveApi api([](int n) { return n == 0 ? TooMany("1") : Ok(R"({"ok":true})"); });
  Http http(api.Config());
  auto t0 = std::chrono::steady_clock::now();
  HttpResponse r = http.Request("GET", "/api/v1/pods");
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(api.requests(), 2);
  EXPECT_GE(waited, std::chrono::milliseconds(900)) << "Retry-After: 1 was not honoured";
}

TEST(KubeHttp, RetriesOn429AreBounded) {
  KeepAliveApi api([](int) { return TooMany("0"); });
  Http http(api.Config());
  HttpResponse r = http.Request("GET", "/api/v1/pods");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(api.requests(), 1 + Http::kMaxRetriesOn429);
  EXPECT_NE(r.Describe().find("too many requests"), std::string::npos);
}

TEST(KubeHttp, ALongRetryAfterIsLeftToTheCaller) {
  KeepAliveApi api([](int) { return TooMany("120"); });
  Http http(api.Config());
  HttpResponse r = http.Request("GET", "/api/v1/pods");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(api.requests(), 1);
}

}  // namespace
}  // namespace zm::k8s
