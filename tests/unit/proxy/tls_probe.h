// Test-only TLS peers for checking what the HBONE listener and client accept: a blocking HBONE client whose TLS
// settings the test chooses (no client certificate, TLS 1.2 at most, any certificate) and that reports the certificate
// the server presented; a rogue HBONE server that counts every connection, ClientHello and handshake reaching it; and
// certificates with a chosen validity period. Nothing here checks the peer: the product's checks are under test.
#pragma once

#include <netinet/in.h>
#include <openssl/base.h>
#include <openssl/ssl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/proxy/conn_observer.h"
#include "common/tls/context.h"
#include "tests/unit/proxy/test_certs.h"

namespace zm::testing {

// Re-signs the leaf of |creds| with |ca| after setting notBefore/notAfter to now + the offsets (seconds, may be
// negative). Everything else (key, SAN, extensions, issuer) stays as MakeLeaf made it.
void SetLeafValidity(tls::Credentials& creds, const TestCa& ca, long not_before_offset, long not_after_offset);

// A certificate reduced to what a before/after comparison needs.
struct CertInfo {
  std::string der;         // the whole certificate, DER ("" when there was none)
  std::string serial;      // hex
  int64_t not_before = 0;  // unix seconds
  int64_t not_after = 0;
  std::string public_key;  // DER SubjectPublicKeyInfo
  std::string spiffe_id;   // the URI SAN ("" when it does not parse)
  bool empty() const { return der.empty(); }
};
CertInfo Describe(X509* cert);
std::string Hex(const std::string& bytes);

struct ProbeOptions {
  const tls::Credentials* creds = nullptr;  // nullptr: no client certificate at all
  uint16_t max_version = TLS1_3_VERSION;    // TLS1_2_VERSION: offer TLS 1.2 at most
};

struct ProbeResult {
  bool tcp = false;        // the TCP connection was established
  bool handshake = false;  // SSL_connect succeeded (with TLS 1.3 the server judges our certificate only after that)
  uint16_t version = 0;    // negotiated protocol version when the handshake succeeded
  int status = 0;          // :status answered to the CONNECT; 0: none
  std::string error;       // the first failure: the TLS error (e.g. the alert the server sent) or why the read ended
  CertInfo server_cert;    // the certificate the server presented during the handshake
};

// TCP from |src| (bound) to |dst|:|port|, TLS (ALPN h2) set up by |opts|, then one HTTP/2 CONNECT |authority|; waits
// (at most |timeout_ms| per read) for its response. A 200 stream is cancelled at once.
ProbeResult ProbeHbone(const char* src, const char* dst, uint16_t port, const std::string& authority,
                       const ProbeOptions& opts, int timeout_ms = 5000);

// A rogue HBONE server on |ip| (ephemeral port) presenting |creds| with the product's own server context
// (tls::NewServerContext: it requires a client certificate chaining to |client_roots| in |trust_domain|). It records
// what reaches it; after a completed handshake it reads whatever the client sends (HTTP/2 preface, CONNECT) and never
// answers. Connections are served one after the other.
class RogueHboneServer {
 public:
  RogueHboneServer(const char* ip, const tls::Credentials& creds, const tls::CertList& client_roots,
                   const std::string& trust_domain);
  ~RogueHboneServer();
  uint16_t port() const { return port_; }

  struct Seen {
    int connections = 0;              // TCP connections accepted
    int client_hellos = 0;            // of those, the ones whose first bytes were a TLS handshake record
    int handshakes = 0;               // completed TLS handshakes
    int finished = 0;                 // connections fully handled (closed)
    size_t app_bytes = 0;             // application data read after completed handshakes
    std::string app_data;             // its first bytes
    std::vector<std::string> peers;   // source address of each connection
    std::vector<std::string> errors;  // why each failed handshake failed (e.g. the client's alert)
  };
  Seen seen();
  // Waits until |n| connections were fully handled; false on timeout.
  bool WaitFinished(int n, int timeout_ms);

 private:
  void Serve(int fd, const std::string& peer);

  int fd_ = -1;
  uint16_t port_ = 0;
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  Seen seen_;
  std::thread thread_;
};

// Records what the proxy reports: closed connections (with their error) and TLS failures.
class RecordingObserver : public proxy::ConnObserver {
 public:
  void OnOpen(proxy::ConnRecord&) override {}
  void OnProgress(proxy::ConnRecord& r) override {
    r.reported_sent = r.sent;
    r.reported_received = r.received;
  }
  void OnClose(proxy::ConnRecord& r) override;
  void OnTlsFailure(proxy::TlsFailure why) override;

  std::vector<std::string> errors();  // ConnRecord::error of every closed connection, "" for clean ones
  std::vector<proxy::TlsFailure> tls_failures();
  // Waits until at least |n| connections were reported closed; false on timeout.
  bool WaitClosed(size_t n, int timeout_ms);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> errors_;
  std::vector<proxy::TlsFailure> tls_;
};

}  // namespace zm::testing
