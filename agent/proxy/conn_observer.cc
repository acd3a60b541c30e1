#include "agent/proxy/conn_observer.h"

namespace zm::proxy {

const char* TlsFailureName(TlsFailure f) {
  switch (f) {
    case TlsFailure::kNoCertificate:
      return "no_certificate";
    case TlsFailure::kPeerVerification:
      return "peer_verification";
    case TlsFailure::kProtocol:
      return "protocol_error";
    case TlsFailure::kConnectionClosed:
      return "connection_closed";
    case TlsFailure::kNoAlpnH2:
      return "no_alpn_h2";
    case TlsFailure::kPeerIdentity:
      return "peer_identity";
    case TlsFailure::kTimeout:
      return "timeout";
  }
  return "unknown";
}

Peer MakePeer(const agent::MeshSnapshot* snap, const net::SockAddr& addr, std::string principal) {
  Peer p;
  p.addr = addr;
  p.set = true;
  p.principal = std::move(principal);
  if (const agent::Workload* w = snap ? snap->Find(addr.ip) : nullptr) {
    p.workload = w->name;
    p.ns = w->ns;
  }
  return p;
}

std::string PrincipalOf(const agent::MeshSnapshot* snap, const net::IpAddr& ip) {
  const agent::Workload* w = snap ? snap->Find(ip) : nullptr;
  return w && w->enrolled ? snap->IdentityOf(*w).ToString() : std::string();
}

}  // namespace zm::proxy
