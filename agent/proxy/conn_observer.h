// Telemetry hooks of the node proxy. Every proxied connection carries one ConnRecord, owned by the object relaying it
// (SpliceRelay, HboneStream) on its worker thread. Bytes are added to the record with plain integer adds; the observer
// hears about them at close, and for long flows every kProgressBytes, so an exporter never takes a lock per read.
// The proxy knows nothing about Prometheus or log formats: agent/metrics implements ConnObserver.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {

enum class Reporter : uint8_t { kSource, kDestination };  // which end of the connection this proxy stands for
enum class Decision : uint8_t { kAllow, kDeny };

// Bounded set of reasons (they become a metric label).
enum class TlsFailure : uint8_t {
  kNoCertificate,     // no certificate for the identity we must present
  kPeerVerification,  // the peer's chain or SPIFFE ID did not verify
  kProtocol,          // TLS alert / protocol error
  kConnectionClosed,  // the peer closed or reset during the handshake
  kNoAlpnH2,          // ALPN h2 not negotiated
  kPeerIdentity,      // verified chain without a usable SPIFFE ID
  kTimeout,           // handshake did not finish in time
};
const char* TlsFailureName(TlsFailure f);

struct Peer {
  std::string workload;   // "" when the address is not a mesh workload
  std::string ns;         // workload namespace
  std::string principal;  // SPIFFE ID, "" when the side has no identity
  net::SockAddr addr{};
  bool set = false;  // filled in (MakePeer); a request record's source is reported once, then cleared
};

struct ConnRecord {
  Reporter reporter = Reporter::kSource;
  bool same_node = false;  // both ends are on this node: this proxy reports for both of them
  const char* flow = "";   // static: "hbone", "same-node", "passthrough", "plaintext"
  Peer source;
  Peer destination;
  std::chrono::steady_clock::time_point start{};
  uint64_t sent = 0;      // source -> destination
  uint64_t received = 0;  // destination -> source
  uint64_t reported_sent = 0;
  uint64_t reported_received = 0;
  Decision decision = Decision::kAllow;
  std::string policy;                  // the policy that decided a denial
  std::string error;                   // why the connection failed; "" for a clean close
  std::string traceparent, baggage;    // W3C trace context the HBONE peer sent (checked), "" when none
  bool opened = false;                 // OnOpen ran (the connection was relayed, not refused)
  void* sink[2] = {nullptr, nullptr};  // the observer's per-label-set handles (two when same_node), set in OnOpen
};

// Fills workload and namespace from the snapshot (by IP); |principal| is whatever identity the caller can vouch for.
Peer MakePeer(const agent::MeshSnapshot* snap, const net::SockAddr& addr, std::string principal);
// The SPIFFE ID of the workload at |ip| when it is enrolled, else "".
std::string PrincipalOf(const agent::MeshSnapshot* snap, const net::IpAddr& ip);

struct RequestRecord;  // agent/proxy/request_record.h

class ConnObserver {
 public:
  virtual ~ConnObserver() = default;
  // Relaying starts (policy allowed). Worker thread; may set r.sink.
  virtual void OnOpen(ConnRecord& r) = 0;
  // r.sent - r.reported_sent and r.received - r.reported_received are new; the observer advances reported_*.
  virtual void OnProgress(ConnRecord& r) = 0;
  // The connection ended: closed, reset, refused or denied (r.opened is false for the last two).
  virtual void OnClose(ConnRecord& r) = 0;
  virtual void OnTlsFailure(TlsFailure why) = 0;
  // One HTTP request of the L7 path ended (response relayed, or failed). Worker thread.
  virtual void OnRequest(const RequestRecord& r) { (void)r; }
};

// The per-connection handle the relays hold: a no-op without an observer.
class ConnTracker {
 public:
  static constexpr uint64_t kProgressBytes = 1 << 20;

  void Open(ConnObserver* obs, ConnRecord rec) {
    obs_ = obs;
    if (!obs_) return;
    rec_ = std::move(rec);
    rec_.start = std::chrono::steady_clock::now();
    rec_.opened = true;
    obs_->OnOpen(rec_);
  }
  void AddSent(uint64_t n) {
    rec_.sent += n;
    if (obs_ && rec_.sent - rec_.reported_sent >= kProgressBytes) obs_->OnProgress(rec_);
  }
  void AddReceived(uint64_t n) {
    rec_.received += n;
    if (obs_ && rec_.received - rec_.reported_received >= kProgressBytes) obs_->OnProgress(rec_);
  }
  void SetError(std::string why) {
    if (rec_.error.empty()) rec_.error = std::move(why);
  }
  // Reports the end once; later calls do nothing.
  void Close() {
    if (!obs_) return;
    ConnObserver* obs = obs_;
    obs_ = nullptr;
    obs->OnClose(rec_);
  }
  bool active() const { return obs_ != nullptr; }

 private:
  ConnObserver* obs_ = nullptr;
  ConnRecord rec_;
};

}  // namespace zm::proxy
