// Outbound HBONE: pooled TLS+HTTP/2 connections, one CONNECT stream per proxied connection.
// The pool is per worker (no locking), keyed as Istio keys it: {source identity, destination identity, dialled address
// (destination pod IP:15008), source address}, so every CONNECT's :authority IP is the IP its connection was dialled to
// (ztunnel answers 400 otherwise). The connection is bound to the source pod's address (IP_TRANSPARENT from the node
// netns; the replies come back through the BPF 4-tuple lookup on the uplink), so the destination sees the pod, as with
// ztunnel, and `forwarded` is still sent. Limits per pool: streams per connection (also capped by the peer's SETTINGS)
// and connections.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "agent/proxy/hbone_session.h"
#include "agent/state/cert_store.h"

namespace zm::proxy {

class HbonePool;

class HboneClient : public HboneSession {
 public:
  HboneClient(WorkerContext& ctx, HbonePool* pool, std::string key, int fd, bssl::UniquePtr<SSL> ssl, std::string peer);
  bool CanTake() const;  // usable and below the stream limit
  bool Usable() const { return !draining_ && !closed(); }
  // Takes ownership of |downstream|; the CONNECT is sent as soon as the session is ready.
  void AddStream(int downstream, const net::SockAddr& client, const net::SockAddr& target, ConnRecord rec,
                 ServiceConn svc = {});
  const std::string& key() const { return key_; }

 protected:
  void OnEstablished() override;
  void OnRequestOrResponse(HboneStream* s) override;
  void OnSessionClosed(bool was_established) override;
  void StopNewStreams() override;

 private:
  void Submit(HboneStream* s);
  void ConnectTimedOut(HboneStream* s);
  void ArmIdle(HboneStream* s);  // svc.idle_timeout, on the stream's timer once established

  HbonePool* pool_;
  std::string key_;
  bool draining_ = false;
  size_t accepted_ = 0;  // streams ever added (pending + submitted)
  std::vector<HboneStream*> pending_;
};

class HbonePool {
 public:
  explicit HbonePool(WorkerContext& ctx) : ctx_(ctx) {}
  // Relays |downstream| (from |client|, originally to |target|) over HBONE to |target|'s IP on the HBONE port,
  // presenting |src|'s certificate and requiring |dst_id| from the server. |rec| describes the connection for the
  // observer. |svc|: for Service connections (service_conn.h).
  void Open(int downstream, const net::SockAddr& client, const net::SockAddr& target, const agent::WorkloadTls& src,
            const tls::SpiffeId& dst_id, ConnRecord rec = {}, ServiceConn svc = {});
  void Remove(HboneClient* c);
  size_t size() const;  // connections, all keys

  // The pool key: "src-id|dst-id|dial-ip:port|source-ip" (source-ip empty when not bound). Exposed for tests.
  static std::string Key(const tls::SpiffeId& src, const tls::SpiffeId& dst, const net::SockAddr& dial,
                         const net::IpAddr& source_ip);

 private:
  WorkerContext& ctx_;
  std::unordered_map<std::string, std::vector<HboneClient*>> by_key_;
};

}  // namespace zm::proxy
