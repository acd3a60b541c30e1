#include "tools/meshctl/kube/tunnel.h"

#include <poll.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace zm::meshctl::kube {
namespace {

using Clock = std::chrono::steady_clock;

bool WaitFd(int fd, short events, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(left)) > 0;
}

bool SendAll(CURL* c, int fd, std::string_view bytes, Clock::time_point deadline, std::string* error) {
  while (!bytes.empty()) {
    size_t n = 0;
    CURLcode rc = curl_easy_send(c, bytes.data(), bytes.size(), &n);
    if (rc == CURLE_AGAIN) {
      if (!WaitFd(fd, POLLOUT, deadline)) {
        *error = "timed out sending the port-forward request";
        return false;
      }
      continue;
    }
    if (rc != CURLE_OK) {
      *error = std::string("sending the port-forward request: ") + curl_easy_strerror(rc);
      return false;
    }
    bytes.remove_prefix(n);
  }
  return true;
}

// Appends what arrives before the deadline; false on timeout, error or end of stream (*eof set).
bool RecvSome(CURL* c, int fd, Clock::time_point deadline, std::string* into, bool* eof, std::string* error) {
  char buf[16384];
  while (true) {
    size_t n = 0;
    CURLcode rc = curl_easy_recv(c, buf, sizeof(buf), &n);
    if (rc == CURLE_AGAIN) {
      if (!WaitFd(fd, POLLIN, deadline)) {
        *error = "timed out waiting for the API server's answer";
        return false;
      }
      continue;
    }
    if (rc != CURLE_OK) {
      *error = std::string("reading the API server's answer: ") + curl_easy_strerror(rc);
      return false;
    }
    if (n == 0) {
      *eof = true;
      return false;
    }
    into->append(buf, n);
    return true;
  }
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return s;
}

// Header value (first occurrence, trimmed) from a response head; "" if absent.
std::string Header(const std::string& head, const std::string& name) {
  const std::string lower = Lower(head), key = "\r\n" + Lower(name) + ":";
  size_t at = lower.find(key);
  if (at == std::string::npos) return "";
  size_t start = at + key.size(), end = head.find("\r\n", start);
  std::string v = head.substr(start, end - start);
  v.erase(0, v.find_first_not_of(" \t"));
  v.erase(v.find_last_not_of(" \t") + 1);
  return v;
}

// The Kubernetes Status message in an error body (chunked or not: the JSON object inside it), else a short excerpt.
std::string StatusMessage(const std::string& body) {
  size_t open = body.find('{'), close = body.rfind('}');
  if (open != std::string::npos && close != std::string::npos && close > open) {
    auto j = nlohmann::json::parse(body.substr(open, close - open + 1), nullptr, false);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  }
  std::string s = body.substr(0, 200);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string ExplainRefusal(int status, const std::string& body, const PodPort& t, const std::string& server) {
  std::string msg = StatusMessage(body);
  std::string what = "port-forward to pod " + t.ns + "/" + t.pod + " port " + std::to_string(t.port);
  switch (status) {
    case 401:
      return "the API server " + server + " rejected the kubeconfig's credentials (401 Unauthorized" +
             (msg.empty() ? "" : ": " + msg) + "): log in again or pick another --context";
    case 403:
      return what + " forbidden (403" + (msg.empty() ? "" : ": " + msg) +
             "): meshctl needs `get` and `create` on pods/portforward in namespace " + t.ns +
             " (a WebSocket port-forward is authorized as both)";
    case 404:
      return what + ": not found (404" + (msg.empty() ? "" : ": " + msg) +
             "); the pod may have just been replaced, retry";
    default:
      return what + " refused: HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg);
  }
}

}  // namespace

std::unique_ptr<Tunnel> Tunnel::Open(const k8s::Http& api, const PodPort& t, int timeout_seconds, std::string* error) {
  const std::string& server = api.config().server;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  std::string err;
  k8s::RawConnection conn = api.ConnectRaw(timeout_seconds, &err);
  if (!conn) {
    *error = "the API server " + server + " is unreachable: " + err;
    return nullptr;
  }
  curl_socket_t sock = CURL_SOCKET_BAD;
  if (curl_easy_getinfo(conn.get(), CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK || sock == CURL_SOCKET_BAD) {
    *error = "no socket for the API server connection";
    return nullptr;
  }
  std::string token;
  if (!api.BearerToken(&token, error)) return nullptr;
  std::string host = server.substr(server.find("://") + 3);
  host = host.substr(0, host.find('/'));
  const std::string key = ws::HandshakeKey();
  std::string request = "GET /api/v1/namespaces/" + t.ns + "/pods/" + t.pod +
                        "/portforward?ports=" + std::to_string(t.port) +
                        " HTTP/1.1\r\n"
                        "Host: " +
                        host +
                        "\r\n"
                        "User-Agent: meshctl (zeromesh)\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: " +
                        key + "\r\nSec-WebSocket-Protocol: " + kPortForwardProtocol + "\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  request += "\r\n";
  if (!SendAll(conn.get(), sock, request, deadline, &err)) {
    *error = "the API server " + server + ": " + err;
    return nullptr;
  }
  std::string in;
  bool eof = false;
  size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    if (in.size() > (64u << 10) || !RecvSome(conn.get(), sock, deadline, &in, &eof, &err)) {
      *error = "the API server " + server + " gave no HTTP answer to the port-forward upgrade" +
               (eof           ? " (connection closed)"
                : err.empty() ? ""
                              : ": " + err);
      return nullptr;
    }
  }
  const std::string head = "\r\n" + in.substr(0, head_end + 2);  // leading CRLF: Header() finds the first line too
  std::string rest = in.substr(head_end + 4);
  int status = 0;
  if (size_t sp = head.find(' '); sp != std::string::npos) status = std::atoi(head.c_str() + sp + 1);
  if (status != 101) {
    // The error Status object: Content-Length when given, else what comes before close or a short wait.
    size_t want = std::strtoul(Header(head, "Content-Length").c_str(), nullptr, 10);
    auto body_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(2));
    while ((want == 0 || rest.size() < want) && rest.size() < (64u << 10) &&
           RecvSome(conn.get(), sock, body_deadline, &rest, &eof, &err)) {
      if (want == 0 && rest.find("}\n") != std::string::npos) break;
    }
    *error = ExplainRefusal(status, rest, t, server);
    return nullptr;
  }
  if (Lower(Header(head, "Upgrade")) != "websocket" || Header(head, "Sec-WebSocket-Accept") != ws::AcceptValue(key)) {
    *error = "the API server " + server + " answered the port-forward upgrade with a bad WebSocket handshake";
    return nullptr;
  }
  if (std::string proto = Header(head, "Sec-WebSocket-Protocol"); !proto.empty() && proto != kPortForwardProtocol) {
    *error = "the port-forward endpoint chose the unsupported subprotocol '" + proto + "'";
    return nullptr;
  }
  std::unique_ptr<Tunnel> tunnel(new Tunnel(std::move(conn), static_cast<int>(sock), t.port));
  if (!rest.empty() && !tunnel->reader_.Feed(rest)) {
    *error = tunnel->reader_.error();
    return nullptr;
  }
  return tunnel;
}

Tunnel::~Tunnel() {
  Close();
}

bool Tunnel::Fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return false;
}

Tunnel::State Tunnel::Read(std::string* data) {
  if (!error_.empty()) return State::kFailed;
  bool eof = closed_;
  char buf[16384];
  while (!eof) {
    size_t n = 0;
    CURLcode rc = curl_easy_recv(conn_.get(), buf, sizeof(buf), &n);
    if (rc == CURLE_AGAIN) break;
    if (rc != CURLE_OK) {
      Fail(std::string("the port-forward connection broke: ") + curl_easy_strerror(rc));
      return State::kFailed;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (!reader_.Feed(std::string_view(buf, n))) {
      Fail(reader_.error());
      return State::kFailed;
    }
  }
  ws::Message m;
  while (reader_.Next(&m)) {
    switch (m.op) {
      case ws::kBinary:
        if (!demux_.OnMessage(m.payload, data)) {
          Fail(demux_.error());
          return State::kFailed;
        }
        break;
      case ws::kText:
        Fail("port-forward: a text message (the base64 protocol was not asked for)");
        return State::kFailed;
      case ws::kPing:
        out_ += ws::ClientFrame(ws::kPong, m.payload);
        break;
      case ws::kClose:
        if (!closed_) out_ += ws::ClientFrame(ws::kClose, m.payload.substr(0, 2));  // echo the code (RFC 6455 5.5.1)
        closed_ = true;
        eof = true;
        break;
      default:  // kPong
        break;
    }
  }
  Flush();
  if (!eof) return error_.empty() ? State::kOpen : State::kFailed;
  closed_ = true;
  if (!demux_.remote_error().empty()) {
    Fail("the pod's runtime: " + demux_.remote_error());
    return State::kFailed;
  }
  return State::kClosed;
}

bool Tunnel::Write(std::string_view data) {
  constexpr size_t kFrame = 32u << 10;  // bounded frames: the server buffers one at a time
  for (size_t at = 0; at < data.size(); at += kFrame) {
    out_ += ws::ClientFrame(ws::kBinary, PortForwardDemux::DataMessage(data.substr(at, kFrame)));
  }
  return Flush();
}

bool Tunnel::Flush() {
  while (out_pos_ < out_.size()) {
    size_t n = 0;
    CURLcode rc = curl_easy_send(conn_.get(), out_.data() + out_pos_, out_.size() - out_pos_, &n);
    if (rc == CURLE_AGAIN) break;
    if (rc != CURLE_OK) return Fail(std::string("the port-forward connection broke: ") + curl_easy_strerror(rc));
    out_pos_ += n;
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  return error_.empty();
}

void Tunnel::Close() {
  if (closed_ || !conn_) return;
  closed_ = true;
  out_ += ws::ClientFrame(ws::kClose, ws::ClosePayload(1000, ""));
  Flush();
}

}  // namespace zm::meshctl::kube
