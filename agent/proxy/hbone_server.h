// Inbound HBONE (port 15008): TLS server presenting the certificate of the workload the client dialed, then one
// CONNECT stream per tunnelled connection: validate, authorize, connect to the pod with the client's IP as source,
// answer 200 only once that connect succeeded (400 bad request, 401 denied, 503 upstream unreachable).
// As ztunnel does, a CONNECT's :authority IP must be the address the TLS connection was dialled to (400 otherwise).
#pragma once

#include <string>

#include "agent/proxy/hbone_session.h"
#include "agent/proxy/peer_limit.h"

namespace zm::proxy {

class HboneServer : public HboneSession {
 public:
  // |local_id|: the identity whose certificate this connection presents; |peer_addr|: the TCP peer;
  // |local_addr|: the address the client dialled (the workload whose certificate we present); |slot|: the peer's
  // connection slot (ProxyOptions::max_connections_per_peer), given back when the connection closes.
  // The TLS handshake must complete within handshake_timeout, the first CONNECT arrive within header_timeout after it.
  HboneServer(WorkerContext& ctx, int fd, bssl::UniquePtr<SSL> ssl, const tls::SpiffeId& local_id,
              const net::SockAddr& peer_addr, const net::SockAddr& local_addr, PeerSlot slot = {});

 protected:
  void OnEstablished() override;
  void Drain() override;
  int OnBeginHeaders(int32_t stream_id) override;
  void OnRequestOrResponse(HboneStream* s) override;
  void OnUpstreamConnect(HboneStream* s, int err) override;
  void OnSessionClosed(bool was_established) override;

 private:
  void Respond(HboneStream* s, int status, const std::string& why);
  // Tells the observer about a stream refused before relaying (|policy| set for a policy denial).
  void ReportRefused(const agent::MeshSnapshot* snap, const HboneStream* s, const net::SockAddr& src,
                     const std::string& why, const std::string* policy = nullptr);
  // Record() and ResolveSource() read request_: only from OnRequestOrResponse, while it holds |s|'s request.
  ConnRecord Record(const agent::MeshSnapshot* snap, const HboneStream* s, const net::SockAddr& src) const;
  // TrafficPermission http rules apply (AuthzDecision::per_request): the connected pod socket goes to an InboundHttp
  // and the stream relays into a socketpair to it instead. False when that could not be set up.
  bool InsertInboundHttp(HboneStream* s);
  // The stream's source: the first `forwarded` element's for= when it is an address of the target's family (and
  // hbone_trust_forwarded), else the TCP peer. The TCP peer and that for=, when they are known workloads, must have the
  // verified client identity. False: |why| says what was refused (answered 400).
  bool ResolveSource(const agent::MeshSnapshot& snap, const HboneStream* s, net::SockAddr* src, std::string* why) const;

  tls::SpiffeId local_id_;
  tls::SpiffeId peer_id_;
  net::SockAddr peer_addr_;
  net::SockAddr local_addr_;
  PeerSlot slot_;
};

}  // namespace zm::proxy
