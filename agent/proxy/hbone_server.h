// Inbound HBONE (port 15008): TLS server presenting the certificate of the workload the client dialed, then one
// CONNECT stream per tunnelled connection: validate, authorize, connect to the pod with the client's IP as source,
// answer 200 only once that connect succeeded (400 bad request, 401 denied, 503 upstream unreachable).
#pragma once

#include <string>

#include "agent/proxy/hbone_session.h"

namespace zm::proxy {

class HboneServer : public HboneSession {
 public:
  // |local_id|: the identity whose certificate this connection presents; |peer_addr|: the TCP peer.
  HboneServer(WorkerContext& ctx, int fd, bssl::UniquePtr<SSL> ssl, const tls::SpiffeId& local_id,
              const sockaddr_in& peer_addr);

 protected:
  void OnEstablished() override;
  int OnBeginHeaders(int32_t stream_id) override;
  void OnRequestOrResponse(HboneStream* s) override;
  void OnUpstreamConnect(HboneStream* s, int err) override;

 private:
  void Respond(HboneStream* s, int status, const std::string& why);
  // Tells the observer about a stream refused before relaying (|policy| set for a policy denial).
  void ReportRefused(const agent::MeshSnapshot* snap, const HboneStream* s, in_addr_t src_ip, const std::string& why,
                     const std::string* policy = nullptr);
  ConnRecord Record(const agent::MeshSnapshot* snap, const HboneStream* s, in_addr_t src_ip) const;

  tls::SpiffeId local_id_;
  tls::SpiffeId peer_id_;
  sockaddr_in peer_addr_;
};

// Parses "a.b.c.d:port" (port 1-65535). Exposed for tests.
bool ParseAuthority(std::string_view authority, sockaddr_in* out);
// First for= of a Forwarded header (RFC 7239), quoted or not, IPv4 only.
bool ParseForwardedFor(std::string_view forwarded, in_addr_t* out);

}  // namespace zm::proxy
