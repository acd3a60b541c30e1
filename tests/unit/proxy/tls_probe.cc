#include "tests/unit/proxy/tls_probe.h"

#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>

#include "tests/unit/proxy/loopback.h"

namespace zm::testing {
namespace {

constexpr uint8_t kAlpnH2[] = {2, 'h', '2'};

int64_t ToUnix(const ASN1_TIME* t) {
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, secs = 0;
  if (t == nullptr || !epoch || !ASN1_TIME_diff(&days, &secs, epoch.get(), t)) return INT64_MIN;
  return static_cast<int64_t>(days) * 86400 + secs;
}

// The TLS library's reason for the last failure on |ssl| (for a refused handshake: the alert the peer sent, e.g.
// "SSLV3_ALERT_CERTIFICATE_EXPIRED"), or what happened to the socket.
std::string FailureOf(SSL* ssl, int ret) {
  int err = SSL_get_error(ssl, ret);
  std::string out;
  uint32_t e;
  while ((e = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : "unknown";
  }
  if (!out.empty()) return out;
  if (err == SSL_ERROR_ZERO_RETURN) return "closed (close_notify)";
  if (err == SSL_ERROR_SYSCALL) return ret == 0 ? "closed (EOF)" : std::string("socket: ") + std::strerror(errno);
  if (err == SSL_ERROR_WANT_READ) return "read timed out";
  return "SSL error " + std::to_string(err);
}

nghttp2_nv Nv(const std::string& name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

struct H2State {
  std::string out;
  std::map<int32_t, int> status;
  std::map<int32_t, bool> closed;
};

}  // namespace

void SetLeafValidity(tls::Credentials& creds, const TestCa& ca, long not_before_offset, long not_after_offset) {
  X509* cert = creds.chain.at(0).get();
  if (!X509_gmtime_adj(X509_getm_notBefore(cert), not_before_offset) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert), not_after_offset) || !X509_sign(cert, ca.key.get(), EVP_sha256())) {
    throw std::runtime_error("re-signing a leaf with a new validity period");
  }
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

CertInfo Describe(X509* cert) {
  CertInfo info;
  if (cert == nullptr) return info;
  uint8_t* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len > 0) info.der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  bssl::UniquePtr<BIGNUM> serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    info.serial = hex;
    OPENSSL_free(hex);
  }
  info.not_before = ToUnix(X509_get0_notBefore(cert));
  info.not_after = ToUnix(X509_get0_notAfter(cert));
  uint8_t* spki = nullptr;
  len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
  if (len > 0) info.public_key.assign(reinterpret_cast<char*>(spki), static_cast<size_t>(len));
  OPENSSL_free(spki);
  tls::SpiffeId id;
  std::string why;
  if (tls::LeafSpiffeId(cert, &id, &why)) info.spiffe_id = id.ToString();
  return info;
}

ProbeResult ProbeHbone(const char* src, const char* dst, uint16_t port, const std::string& authority,
                       const ProbeOptions& opts, int timeout_ms) {
  ProbeResult r;
  ERR_clear_error();
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), opts.max_version) ||
      SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof(kAlpnH2)) != 0) {
    throw std::runtime_error("probe SSL_CTX");
  }
  if (opts.creds != nullptr) {
    if (!SSL_CTX_use_certificate(ctx.get(), opts.creds->chain.at(0).get()) ||
        !SSL_CTX_use_PrivateKey(ctx.get(), opts.creds->key.get())) {
      throw std::runtime_error("probe certificate");
    }
    for (size_t i = 1; i < opts.creds->chain.size(); ++i)
      SSL_CTX_add1_chain_cert(ctx.get(), opts.creds->chain[i].get());
  }
  // Whoever the server is, go on: what is under test is what the server accepts, and what it presents.
  SSL_CTX_set_custom_verify(ctx.get(), SSL_VERIFY_PEER,
                            [](SSL*, uint8_t*) -> ssl_verify_result_t { return ssl_verify_ok; });

  int fd = ConnectFrom(src, dst, port, timeout_ms);
  if (fd < 0) {
    r.error = "tcp connect failed";
    return r;
  }
  r.tcp = true;
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  int ret = SSL_connect(ssl.get());
  // The server's certificate arrives before the client's Finished: recorded even when the handshake then fails.
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl.get()));
  r.server_cert = Describe(peer.get());
  if (ret != 1) {
    r.error = FailureOf(ssl.get(), ret);
    close(fd);
    return r;
  }
  r.handshake = true;
  r.version = SSL_version(ssl.get());

  H2State st;
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(
      cbs, [](nghttp2_session*, const uint8_t* data, size_t len, int, void* user) -> ssize_t {
        static_cast<H2State*>(user)->out.append(reinterpret_cast<const char*>(data), len);
        return static_cast<ssize_t>(len);
      });
  nghttp2_session_callbacks_set_on_header_callback(
      cbs,
      [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
         size_t valuelen, uint8_t, void* user) -> int {
        if (std::string_view(reinterpret_cast<const char*>(name), namelen) == ":status") {
          static_cast<H2State*>(user)->status[frame->hd.stream_id] =
              std::stoi(std::string(reinterpret_cast<const char*>(value), valuelen));
        }
        return 0;
      });
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                         [](nghttp2_session*, int32_t id, uint32_t, void* user) -> int {
                                                           static_cast<H2State*>(user)->closed[id] = true;
                                                           return 0;
                                                         });
  nghttp2_session* h2 = nullptr;
  nghttp2_session_client_new(&h2, cbs, &st);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, nullptr, 0);
  const std::string method = ":method", connect = "CONNECT", auth = ":authority";
  nghttp2_nv nva[] = {Nv(method, connect), Nv(auth, authority)};
  int32_t id = nghttp2_submit_request(h2, nullptr, nva, 2, nullptr, nullptr);
  uint8_t buf[16384];
  while (id > 0 && st.status[id] == 0 && !st.closed[id]) {
    if (nghttp2_session_send(h2) != 0) {
      r.error = "nghttp2 send";
      break;
    }
    if (!st.out.empty()) {
      int w = SSL_write(ssl.get(), st.out.data(), static_cast<int>(st.out.size()));
      if (w <= 0) {
        r.error = FailureOf(ssl.get(), w);
        break;
      }
      st.out.clear();
    }
    int n = SSL_read(ssl.get(), buf, sizeof(buf));  // the socket has a receive timeout (ConnectFrom)
    if (n <= 0) {
      r.error = FailureOf(ssl.get(), n);
      break;
    }
    if (nghttp2_session_mem_recv(h2, buf, static_cast<size_t>(n)) < 0) {
      r.error = "nghttp2 recv";
      break;
    }
  }
  if (id > 0) r.status = st.status[id];
  if (r.status == 200) {
    nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    nghttp2_session_send(h2);
    SSL_write(ssl.get(), st.out.data(), static_cast<int>(st.out.size()));
  }
  nghttp2_session_del(h2);
  ssl.reset();
  close(fd);
  ERR_clear_error();
  return r;
}

// ---------------------------------------------------------------- rogue server

RogueHboneServer::RogueHboneServer(const char* ip, const tls::Credentials& creds, const tls::CertList& client_roots,
                                   const std::string& trust_domain) {
  std::string err;
  ctx_ = tls::NewServerContext(creds, client_roots, trust_domain, &err);
  if (!ctx_) throw std::runtime_error("rogue server context: " + err);
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = Ip(ip).v4();
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd_, 64) != 0) {
    throw std::runtime_error("rogue server bind/listen");
  }
  socklen_t len = sizeof(sa);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      sockaddr_in peer{};
      socklen_t plen = sizeof(peer);
      int c = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
      if (c < 0) continue;
      char addr[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof(addr));
      Serve(c, addr);
    }
  });
}

RogueHboneServer::~RogueHboneServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

void RogueHboneServer::Serve(int fd, const std::string& peer) {
  {
    std::lock_guard<std::mutex> l(mu_);
    seen_.connections++;
    seen_.peers.push_back(peer);
  }
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  // A TLS record of type handshake (22) first: the client began a TLS handshake with us.
  uint8_t first = 0;
  bool hello = recv(fd, &first, 1, MSG_PEEK) == 1 && first == 0x16;
  std::string error;
  bool handshake = false;
  size_t bytes = 0;
  std::string data;
  if (hello) {
    ERR_clear_error();
    bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), fd);
    int ret = SSL_accept(ssl.get());
    if (ret == 1) {
      handshake = true;
      // Read what the client sends (HTTP/2 preface, SETTINGS, CONNECT) until it stops or closes; never answer.
      char buf[16384];
      int n;
      while ((n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0) {
        bytes += static_cast<size_t>(n);
        if (data.size() < 4096) data.append(buf, static_cast<size_t>(n));
      }
    } else {
      error = FailureOf(ssl.get(), ret);
      std::string why = tls::VerifyFailureReason(ssl.get());
      if (!why.empty()) error += " (" + why + ")";
    }
    ERR_clear_error();
  }
  close(fd);
  std::lock_guard<std::mutex> l(mu_);
  seen_.client_hellos += hello;
  seen_.handshakes += handshake;
  seen_.app_bytes += bytes;
  seen_.app_data += data;
  if (!handshake && hello) seen_.errors.push_back(error);
  seen_.finished++;
  cv_.notify_all();
}

RogueHboneServer::Seen RogueHboneServer::seen() {
  std::lock_guard<std::mutex> l(mu_);
  return seen_;
}

bool RogueHboneServer::WaitFinished(int n, int timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return seen_.finished >= n; });
}

// ---------------------------------------------------------------- observer

void RecordingObserver::OnClose(proxy::ConnRecord& r) {
  std::lock_guard<std::mutex> l(mu_);
  errors_.push_back(r.error);
  cv_.notify_all();
}

void RecordingObserver::OnTlsFailure(proxy::TlsFailure why) {
  std::lock_guard<std::mutex> l(mu_);
  tls_.push_back(why);
  cv_.notify_all();
}

std::vector<std::string> RecordingObserver::errors() {
  std::lock_guard<std::mutex> l(mu_);
  return errors_;
}

std::vector<proxy::TlsFailure> RecordingObserver::tls_failures() {
  std::lock_guard<std::mutex> l(mu_);
  return tls_;
}

bool RecordingObserver::WaitClosed(size_t n, int timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return errors_.size() >= n; });
}

}  // namespace zm::testing
