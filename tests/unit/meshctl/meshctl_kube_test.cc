// meshctl's Kubernetes mode: WebSocket framing (the RFC 6455 examples, masking, fragmentation, control frames, close,
// protocol violations) read through real sockets, the port-forward channel demux, kubeconfig discovery and contexts,
// and the tunnel, bridge and controller lookup against an in-test API server on loopback that speaks the kubelet's
// WebSocket port-forward protocol.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "controller/k8s/client_config.h"
#include "controller/k8s/http.h"
#include "tools/meshctl/kube/bridge.h"
#include "tools/meshctl/kube/channels.h"
#include "tools/meshctl/kube/kubeconfig.h"
#include "tools/meshctl/kube/locate.h"
#include "tools/meshctl/kube/tunnel.h"
#include "tools/meshctl/kube/websocket.h"

namespace zm::meshctl::kube {
namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

bool WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Sends `wire` through a socketpair in 7-byte writes and feeds what arrives, in reads of at most 5 bytes, to a
// Reader: the framing must not depend on how TCP-like streams split the bytes.
std::vector<ws::Message> ReadThroughSocket(const std::string& wire, bool masked, std::string* error) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::thread writer([&] {
    for (size_t at = 0; at < wire.size(); at += 7) WriteAll(sv[0], std::string_view(wire).substr(at, 7));
    ::close(sv[0]);
  });
  ws::Reader reader(masked, 1 << 20);
  std::vector<ws::Message> out;
  char buf[5];
  ssize_t n;
  bool ok = true;
  while (ok && (n = ::recv(sv[1], buf, sizeof(buf), 0)) > 0) {
    ok = reader.Feed(std::string_view(buf, static_cast<size_t>(n)));
    ws::Message m;
    while (reader.Next(&m)) out.push_back(m);
  }
  while (::recv(sv[1], buf, sizeof(buf), 0) > 0) {
  }  // after a refusal: drain, so the writer ends
  writer.join();
  ::close(sv[1]);
  *error = reader.error();
  return out;
}

TEST(WebSocket, EncodesTheRfcExamples) {  // RFC 6455 section 5.7
  EXPECT_EQ(ws::EncodeFrame(ws::kText, "Hello", true, nullptr), Bytes({0x81, 0x05}) + "Hello");
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  EXPECT_EQ(ws::EncodeFrame(ws::kText, "Hello", true, mask),
            Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(ws::EncodeFrame(ws::kText, "Hel", false, nullptr), Bytes({0x01, 0x03}) + "Hel");
  EXPECT_EQ(ws::EncodeFrame(ws::kContinuation, "lo", true, nullptr), Bytes({0x80, 0x02}) + "lo");
  EXPECT_EQ(ws::EncodeFrame(ws::kPing, "Hello", true, nullptr), Bytes({0x89, 0x05}) + "Hello");
  EXPECT_EQ(ws::EncodeFrame(ws::kBinary, std::string(256, 'x'), true, nullptr).substr(0, 4),
            Bytes({0x82, 0x7e, 0x01, 0x00}));
  EXPECT_EQ(ws::EncodeFrame(ws::kBinary, std::string(65536, 'x'), true, nullptr).substr(0, 10),
            Bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(ws::AcceptValue("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // section 1.3
  EXPECT_NE(ws::HandshakeKey(), ws::HandshakeKey());
  EXPECT_EQ(ws::HandshakeKey().size(), 24u);  // 16 bytes, base64
}

TEST(WebSocket, ClientFramesAreMaskedAndReadBackAtEveryLengthForm) {
  std::string wire;
  std::vector<size_t> sizes = {0, 1, 125, 126, 65535, 65536, 70000};
  for (size_t n : sizes) {
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; i++) payload[i] = static_cast<char>(i * 7);
    std::string frame = ws::ClientFrame(ws::kBinary, payload);
    EXPECT_EQ(static_cast<uint8_t>(frame[1]) & 0x80, 0x80) << "mask bit";
    if (n >= 4) {
      EXPECT_EQ(frame.find(payload), std::string::npos) << "payload must not travel in clear";
    }
    wire += frame;
  }
  std::string error;
  auto got = ReadThroughSocket(wire, /*masked=*/true, &error);
  EXPECT_EQ(error, "");
  ASSERT_EQ(got.size(), sizes.size());
  for (size_t k = 0; k < sizes.size(); k++) {
    ASSERT_EQ(got[k].payload.size(), sizes[k]);
    for (size_t i = 0; i < sizes[k]; i++) ASSERT_EQ(got[k].payload[i], static_cast<char>(i * 7));
  }
}

TEST(WebSocket, ReassemblesFragmentsAroundControlFrames) {
  std::string wire =
      ws::EncodeFrame(ws::kText, "Hel", false, nullptr) + ws::EncodeFrame(ws::kPing, "p", true, nullptr) +
      ws::EncodeFrame(ws::kContinuation, "l", false, nullptr) + ws::EncodeFrame(ws::kPong, "", true, nullptr) +
      ws::EncodeFrame(ws::kContinuation, "o", true, nullptr) + ws::EncodeFrame(ws::kBinary, "x", true, nullptr) +
      ws::EncodeFrame(ws::kClose, ws::ClosePayload(1000, "bye"), true, nullptr);
  std::string error;
  auto got = ReadThroughSocket(wire, /*masked=*/false, &error);
  EXPECT_EQ(error, "");
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].op, ws::kPing);
  EXPECT_EQ(got[0].payload, "p");
  EXPECT_EQ(got[1].op, ws::kPong);
  EXPECT_EQ(got[2].op, ws::kText);
  EXPECT_EQ(got[2].payload, "Hello");
  EXPECT_EQ(got[3].op, ws::kBinary);
  EXPECT_EQ(got[3].payload, "x");
  EXPECT_EQ(got[4].op, ws::kClose);
  uint16_t code = 0;
  std::string reason;
  ASSERT_TRUE(ws::ParseClose(got[4].payload, &code, &reason));
  EXPECT_EQ(code, 1000);
  EXPECT_EQ(reason, "bye");
  ASSERT_TRUE(ws::ParseClose("", &code, &reason));
  EXPECT_EQ(code, 1005);  // no status
  EXPECT_FALSE(ws::ParseClose("x", &code, &reason));
  EXPECT_LE(ws::ClosePayload(1000, std::string(300, 'r')).size(), 125u);
}

TEST(WebSocket, RefusesProtocolViolations) {
  const uint8_t mask[4] = {1, 2, 3, 4};
  struct Case {
    std::string wire;
    bool masked;
    std::string want;
  };
  for (const auto& c : std::vector<Case>{
           {Bytes({0xc2, 0x00}), false, "reserved bits"},
           {Bytes({0x83, 0x00}), false, "reserved opcode 3"},
           {Bytes({0x8b, 0x00}), false, "reserved opcode 11"},
           {ws::EncodeFrame(ws::kPing, std::string(126, 'p'), true, nullptr), false, "control frame"},
           {ws::EncodeFrame(ws::kPing, "p", false, nullptr), false, "control frame"},
           {ws::EncodeFrame(ws::kContinuation, "x", true, nullptr), false, "continuation frame without"},
           {ws::EncodeFrame(ws::kText, "a", false, nullptr) + ws::EncodeFrame(ws::kBinary, "b", true, nullptr), false,
            "new data frame inside"},
           {ws::EncodeFrame(ws::kBinary, "x", true, mask), false, "masked frame from the server"},
           {ws::EncodeFrame(ws::kBinary, "x", true, nullptr), true, "unmasked frame from a client"},
           {ws::EncodeFrame(ws::kBinary, std::string((1 << 20) + 1, 'x'), true, nullptr), false, "larger than"},
           {ws::EncodeFrame(ws::kText, std::string(1 << 19, 'x'), false, nullptr) +
                ws::EncodeFrame(ws::kContinuation, std::string((1 << 19) + 1, 'x'), true, nullptr),
            false, "larger than"},
           {Bytes({0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1}), false, "most significant bit"},
       }) {
    std::string error;
    auto got = ReadThroughSocket(c.wire, c.masked, &error);
    EXPECT_NE(error.find(c.want), std::string::npos) << "want '" << c.want << "', got '" << error << "'";
    EXPECT_TRUE(got.empty());
  }
}

TEST(PortForwardDemux, SplitsChannelsAndChecksThePortPrefix) {
  PortForwardDemux d(15016);  // 15016 = 0x3aa8, little-endian a8 3a
  std::string data;
  EXPECT_TRUE(d.OnMessage(Bytes({0, 0xa8}), &data));  // the prefix may span messages
  EXPECT_TRUE(d.OnMessage(Bytes({0, 0x3a}) + "hel", &data));
  EXPECT_TRUE(d.OnMessage(Bytes({1, 0xa8, 0x3a}), &data));
  EXPECT_TRUE(d.OnMessage(Bytes({0}) + "lo", &data));
  EXPECT_TRUE(d.OnMessage("", &data));
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(d.remote_error(), "");
  EXPECT_TRUE(d.OnMessage(Bytes({1}) + "dial tcp: connection refused", &data));
  EXPECT_EQ(d.remote_error(), "dial tcp: connection refused");
  EXPECT_EQ(PortForwardDemux::DataMessage("ab"), Bytes({0, 'a', 'b'}));

  PortForwardDemux wrong_port(15016);
  EXPECT_FALSE(wrong_port.OnMessage(Bytes({0, 0x50, 0x00}), &data));
  EXPECT_NE(wrong_port.error().find("port 80, expected 15016"), std::string::npos) << wrong_port.error();
  PortForwardDemux wrong_channel(15016);
  EXPECT_FALSE(wrong_channel.OnMessage(Bytes({2, 0xa8, 0x3a}), &data));
  EXPECT_NE(wrong_channel.error().find("channel 2"), std::string::npos);
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/meshctl-kube-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::filesystem::create_directories(std::filesystem::path(path + "/" + name).parent_path());
    std::ofstream(path + "/" + name) << text;
    return path + "/" + name;
  }
};

TEST(Kubeconfig, DiscoveryPrecedence) {
  TempDir d;
  std::string flag = d.Write("flag.yaml", "x"), first = d.Write("a.yaml", "x"), second = d.Write("b.yaml", "x");
  std::string home_config = d.Write("home/.kube/config", "x");
  std::map<std::string, std::string> env;
  auto getenv = [&env](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  std::string error;
  env = {{"KUBECONFIG", first}, {"HOME", d.path + "/home"}};
  EXPECT_EQ(FindKubeconfig(flag, getenv, &error), flag);  // the flag wins
  EXPECT_EQ(FindKubeconfig("", getenv, &error), first);   // then $KUBECONFIG
  env["KUBECONFIG"] = d.path + "/missing.yaml::" + second + ":" + first;
  EXPECT_EQ(FindKubeconfig("", getenv, &error), second);  // its first file that exists
  env.erase("KUBECONFIG");
  EXPECT_EQ(FindKubeconfig("", getenv, &error), home_config);  // then ~/.kube/config

  EXPECT_EQ(FindKubeconfig(d.path + "/nope", getenv, &error), "");
  EXPECT_NE(error.find("--kubeconfig " + d.path + "/nope: no such file"), std::string::npos) << error;
  env["KUBECONFIG"] = d.path + "/missing.yaml";
  EXPECT_EQ(FindKubeconfig("", getenv, &error), "");  // a KUBECONFIG that names nothing is not silently skipped
  EXPECT_NE(error.find("none of its files exists"), std::string::npos) << error;
  env = {{"HOME", d.path + "/elsewhere"}};
  EXPECT_EQ(FindKubeconfig("", getenv, &error), "");
  EXPECT_NE(error.find("no kubeconfig found"), std::string::npos) << error;
  EXPECT_NE(error.find("--controller HOST:PORT"), std::string::npos) << error;
}

TEST(Kubeconfig, PicksTheContextAskedFor) {
  TempDir d;
  std::string path = d.Write("config", R"(apiVersion: v1
kind: Config
current-context: first
clusters:
- name: c1
  cluster: {server: "https://one.example:6443"}
- name: c2
  cluster: {server: "https://two.example:6443/"}
contexts:
- name: first
  context: {cluster: c1, user: u1}
- name: second
  context: {cluster: c2, user: u2}
users:
- name: u1
  user: {token: tok-one}
- name: u2
  user: {token: tok-two}
)");
  std::string error;
  auto current = k8s::LoadKubeconfig(path, &error);
  ASSERT_TRUE(current) << error;
  EXPECT_EQ(current->server, "https://one.example:6443");
  EXPECT_EQ(current->token, "tok-one");
  auto second = k8s::LoadKubeconfig(path, &error, "second");
  ASSERT_TRUE(second) << error;
  EXPECT_EQ(second->server, "https://two.example:6443");
  EXPECT_EQ(second->token, "tok-two");
  EXPECT_FALSE(k8s::LoadKubeconfig(path, &error, "third"));
  EXPECT_NE(error.find("no context named 'third' (contexts: first, second)"), std::string::npos) << error;
}

// An API server on loopback (plain HTTP): each connection's request head goes to `handler`, which answers on the fd.
// Connections are served one after the other, like the sequential tests below use them.
class FakeApiServer {
 public:
  using Handler = std::function<void(int fd, const std::string& head, std::string rest)>;
  explicit FakeApiServer(Handler h) : handler_(std::move(h)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeApiServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  k8s::ClientConfig Config() const {
    k8s::ClientConfig c;
    c.server = "http://127.0.0.1:" + std::to_string(port_);
    c.token = "user-token";
    return c;
  }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void Serve() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string in;
      char buf[4096];
      ssize_t n;
      while (in.find("\r\n\r\n") == std::string::npos && (n = ::recv(c, buf, sizeof(buf), 0)) > 0) in.append(buf, n);
      size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = in.substr(0, end + 2);
        {
          std::lock_guard<std::mutex> lock(mu_);
          heads_.push_back(head);
        }
        handler_(c, head, in.substr(end + 4));
      }
      ::close(c);
    }
  }

  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> heads_;
};

std::string HeaderValue(const std::string& head, const std::string& name) {
  size_t at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  return head.substr(at, head.find("\r\n", at) - at);
}

void Respond(int fd, int status, const std::string& body) {
  WriteAll(fd, "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

// The kubelet's side of one port-forward: 101, the port on both channels, then `serve` with a reader of the client.
void AcceptPortForward(int fd, const std::string& head, uint16_t port,
                       const std::function<void(int fd, ws::Reader* r, std::string rest)>& serve, std::string rest) {
  WriteAll(fd,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " +
               ws::AcceptValue(HeaderValue(head, "Sec-WebSocket-Key")) +
               "\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n");
  std::string p = Bytes({port & 0xff, port >> 8});
  WriteAll(fd, ws::EncodeFrame(ws::kBinary, Bytes({0}) + p, true, nullptr) +
                   ws::EncodeFrame(ws::kBinary, Bytes({1}) + p, true, nullptr));
  ws::Reader reader(/*masked=*/true);
  serve(fd, &reader, std::move(rest));
}

// Echoes channel-0 data back until the client closes (answers its close frame).
void Echo(int fd, ws::Reader* r, std::string rest) {
  char buf[4096];
  ssize_t n;
  r->Feed(rest);
  while (true) {
    ws::Message m;
    while (r->Next(&m)) {
      if (m.op == ws::kClose) {
        WriteAll(fd, ws::EncodeFrame(ws::kClose, m.payload, true, nullptr));
        return;
      }
      if (m.op == ws::kBinary && !m.payload.empty() && m.payload[0] == 0) {
        // Ping first: the client must answer it with a masked pong in the middle of data.
        WriteAll(fd, ws::EncodeFrame(ws::kPing, "hb", true, nullptr) +
                         ws::EncodeFrame(ws::kBinary, m.payload, true, nullptr));
      }
    }
    if ((n = ::recv(fd, buf, sizeof(buf), 0)) <= 0) return;
    if (!r->Feed(std::string_view(buf, static_cast<size_t>(n)))) return;
  }
}

int ConnectLocal(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    ssize_t got = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

TEST(PortForward, BridgeRelaysEachConnectionThroughItsOwnTunnel) {
  FakeApiServer api([](int fd, const std::string& head, std::string rest) {
    AcceptPortForward(fd, head, 15016, Echo, std::move(rest));
  });
  k8s::Http http(api.Config());
  PodPort target{"zeromesh-system", "zeromesh-controller-abc", 15016};
  std::string error;
  auto first = Tunnel::Open(http, target, 5, &error);
  ASSERT_TRUE(first) << error;
  auto bridge =
      Bridge::Start([&](std::string* e) { return Tunnel::Open(http, target, 5, e); }, std::move(first), &error);
  ASSERT_TRUE(bridge) << error;
  for (int round = 0; round < 2; round++) {
    int c = ConnectLocal(bridge->port());
    std::string big(200000, 'z');  // several WebSocket frames each way
    for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>('a' + (i * 31 + round) % 26);
    ASSERT_TRUE(WriteAll(c, big));
    EXPECT_EQ(ReadN(c, big.size()), big);
    ::close(c);
    for (int i = 0; i < 200 && api.heads().size() < static_cast<size_t>(round + 1); i++) usleep(10000);
  }
  EXPECT_EQ(bridge->last_error(), "");
  bridge.reset();
  auto heads = api.heads();
  ASSERT_EQ(heads.size(), 2u);  // one port-forward per local connection
  for (const auto& h : heads) {
    EXPECT_EQ(h.substr(0, h.find("\r\n")),
              "GET /api/v1/namespaces/zeromesh-system/pods/zeromesh-controller-abc/portforward?ports=15016 HTTP/1.1");
    EXPECT_EQ(HeaderValue(h, "Authorization"), "Bearer user-token");
    EXPECT_EQ(HeaderValue(h, "Upgrade"), "websocket");
    EXPECT_EQ(HeaderValue(h, "Sec-WebSocket-Version"), "13");
    EXPECT_EQ(HeaderValue(h, "Sec-WebSocket-Protocol"), "v4.channel.k8s.io");
  }
}

TEST(PortForward, TheRuntimesErrorChannelTextIsKept) {
  FakeApiServer api([](int fd, const std::string& head, std::string rest) {
    AcceptPortForward(
        fd, head, 15016,
        [](int fd, ws::Reader*, std::string) {
          WriteAll(fd, ws::EncodeFrame(ws::kBinary, Bytes({1}) + "error forwarding port 15016: connection refused",
                                       true, nullptr) +
                           ws::EncodeFrame(ws::kClose, ws::ClosePayload(1000, ""), true, nullptr));
        },
        std::move(rest));
  });
  k8s::Http http(api.Config());
  PodPort target{"ns", "pod", 15016};
  std::string error;
  auto bridge = Bridge::Start([&](std::string* e) { return Tunnel::Open(http, target, 5, e); }, nullptr, &error);
  ASSERT_TRUE(bridge) << error;
  int c = ConnectLocal(bridge->port());
  char b;
  EXPECT_EQ(::recv(c, &b, 1, 0), 0);  // the relay closes the local side
  ::close(c);
  EXPECT_NE(bridge->last_error().find("the pod's runtime: error forwarding port 15016: connection refused"),
            std::string::npos)
      << bridge->last_error();
}

TEST(PortForward, RefusalsSayWhy) {
  std::atomic<int> status{403};
  FakeApiServer api([&](int fd, const std::string&, std::string) {
    Respond(
        fd, status,
        R"({"kind":"Status","status":"Failure","message":"pods \"pod\" is forbidden: User \"bob\" cannot create resource \"pods/portforward\""})");
  });
  k8s::Http http(api.Config());
  PodPort target{"zeromesh-system", "pod", 15016};
  std::string error;
  EXPECT_FALSE(Tunnel::Open(http, target, 5, &error));
  EXPECT_NE(error.find("User \"bob\" cannot create"), std::string::npos) << error;
  EXPECT_NE(error.find("meshctl needs `get` and `create` on pods/portforward in namespace zeromesh-system"),
            std::string::npos)
      << error;
  status = 401;
  EXPECT_FALSE(Tunnel::Open(http, target, 5, &error));
  EXPECT_NE(error.find("rejected the kubeconfig's credentials (401"), std::string::npos) << error;
  status = 404;
  EXPECT_FALSE(Tunnel::Open(http, target, 5, &error));
  EXPECT_NE(error.find("not found (404"), std::string::npos) << error;

  k8s::ClientConfig nowhere;
  nowhere.server = "http://127.0.0.1:1";
  EXPECT_FALSE(Tunnel::Open(k8s::Http(nowhere), target, 5, &error));
  EXPECT_NE(error.find("the API server http://127.0.0.1:1 is unreachable"), std::string::npos) << error;
}

std::string ControllerPod(const std::string& name, const std::string& phase, bool ready) {
  return R"({"metadata":{"name":")" + name + R"("},"spec":{"containers":[{"name":"controller","args":[)" +
         R"("--kubernetes","--trust-bundle-configmap=zeromesh-system/zeromesh-ca-root-cert",)" +
         R"("--operator-addr=127.0.0.1:15016","--leader-elect-lease-name","zeromesh-controller"]}]},)" +
         R"("status":{"phase":")" + phase + R"(","conditions":[{"type":"Ready","status":")" +
         (ready ? "True" : "False") + R"("}]}})";
}

TEST(Locate, FindsTheLeaderItsOperatorPortAndTheMeshRoot) {
  std::atomic<bool> forbid_pods{false};
  std::atomic<bool> lease_holder{true};
  FakeApiServer api([&](int fd, const std::string& head, std::string) {
    std::string line = head.substr(0, head.find("\r\n"));
    if (forbid_pods) return Respond(fd, 403, R"({"message":"pods is forbidden: User \"bob\" cannot list"})");
    if (line.find("/api/v1/namespaces/zeromesh-system/pods?labelSelector=app.kubernetes.io%2Fpart-of%3Dzeromesh") !=
        std::string::npos) {
      return Respond(fd, 200,
                     R"({"items":[)" + ControllerPod("zeromesh-controller-7d-a", "Running", true) + "," +
                         ControllerPod("zeromesh-controller-7d-b", "Running", true) + "," +
                         ControllerPod("zeromesh-controller-7d-c", "Pending", false) + "]}");
    }
    if (line.find("/apis/coordination.k8s.io/v1/namespaces/zeromesh-system/leases/zeromesh-controller ") !=
        std::string::npos) {
      return Respond(fd, 200,
                     std::string(R"({"spec":{"holderIdentity":")") +
                         (lease_holder ? "zeromesh-controller-7d-b_0123abcd" : "") + R"("}})");
    }
    if (line.find("/api/v1/namespaces/zeromesh-system/configmaps/zeromesh-ca-root-cert ") != std::string::npos) {
      return Respond(fd, 200,
                     R"({"data":{"root-cert.pem":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}})");
    }
    if (line.find("/api/v1/namespaces/elsewhere/pods?") != std::string::npos) {
      return Respond(fd, 200, R"({"items":[]})");  // a namespace without pods (or none at all) lists nothing
    }
    Respond(fd, 404, R"({"message":"not found"})");
  });
  k8s::Http http(api.Config());
  std::string error;
  auto t = LocateController(http, "zeromesh-system", true, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->pod, "zeromesh-controller-7d-b");
  EXPECT_EQ(t->role, "leader (lease zeromesh-system/zeromesh-controller)");
  EXPECT_EQ(t->operator_port, 15016);
  EXPECT_NE(t->root_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(t->root_source, "ConfigMap zeromesh-system/zeromesh-ca-root-cert");

  lease_holder = false;  // released (a rollout): any running, ready replica; a standby says so when asked
  t = LocateController(http, "zeromesh-system", false, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->pod, "zeromesh-controller-7d-a");
  EXPECT_NE(t->role.find("has no holder"), std::string::npos) << t->role;

  EXPECT_FALSE(LocateController(http, "elsewhere", true, &error));
  EXPECT_NE(error.find("no zeromesh controller pod in namespace elsewhere"), std::string::npos) << error;

  forbid_pods = true;
  EXPECT_FALSE(LocateController(http, "zeromesh-system", true, &error));
  EXPECT_NE(error.find("meshctl needs `list pods` in namespace zeromesh-system"), std::string::npos) << error;

  EXPECT_EQ(ArgValue({"--a=1", "--b", "2"}, "--b"), "2");
  EXPECT_EQ(ArgValue({"--a=1"}, "--a"), "1");
  EXPECT_EQ(ArgValue({"--ab=1"}, "--a"), "");
  EXPECT_EQ(HolderPod("zeromesh-controller-7d-b_0123abcd"), "zeromesh-controller-7d-b");
}

}  // namespace
}  // namespace zm::meshctl::kube
