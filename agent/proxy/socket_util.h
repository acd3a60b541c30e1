// Socket helpers for the proxy: listeners, non-blocking upstream connects with source binding, resets.
#pragma once

#include <netinet/in.h>

#include <string>

namespace zm::proxy {

// How upstream sockets take the client's IP as their source.
enum class SourceBind {
  kTransparent,  // IP_TRANSPARENT + bind(src, 0): production, foreign source addresses
  kPlain,        // bind(src, 0) without IP_TRANSPARENT: loopback tests (127.0.0.0/8 is all local)
  kNone,         // kernel picks the source
};

// A non-blocking listening socket with SO_REUSEADDR (and IP_TRANSPARENT if asked). Returns -1 and sets *error.
// |mark|: SO_MARK for the socket (0: none; needs CAP_NET_ADMIN). A listener's mark carries to its SYN-ACKs and the
// sockets it accepts.
int MakeListener(in_addr_t addr, uint16_t port, bool transparent, uint32_t mark, std::string* error);
uint16_t LocalPort(int fd);

// Starts a non-blocking connect to |dst| from |src_ip| (network order; ignored for kNone). Returns the fd (connect in
// progress or done) or -1 with *error set.
int StartConnect(const sockaddr_in& dst, in_addr_t src_ip, SourceBind bind, uint32_t mark, std::string* error);
// After EPOLLOUT on a connecting socket: 0 when connected, else the errno.
int ConnectResult(int fd);

void TuneStream(int fd);     // TCP_NODELAY
void ResetAndClose(int fd);  // SO_LINGER 0: the peer sees RST
std::string AddrToString(const sockaddr_in& a);
std::string IpToString(in_addr_t ip);
sockaddr_in MakeAddr(in_addr_t ip, uint16_t port);  // port in host order

// Raises RLIMIT_NOFILE's soft limit to the hard limit (each relayed connection uses up to 6 fds).
void RaiseFdLimit();

}  // namespace zm::proxy
