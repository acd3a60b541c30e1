// Socket helpers for the proxy: listeners, non-blocking upstream connects with source binding, resets.
#pragma once

#include <netinet/in.h>

#include <string>

#include "common/net/ip_addr.h"

namespace zm::proxy {

// How upstream sockets take the client's IP as their source.
enum class SourceBind {
  kTransparent,  // IP_TRANSPARENT (IPV6_TRANSPARENT) + bind(src, 0): production, foreign source addresses
  kPlain,        // bind(src, 0) without IP_TRANSPARENT: loopback tests (127.0.0.0/8 is all local)
  kNone,         // kernel picks the source
};

// A non-blocking listening socket on |addr| (either family) with SO_REUSEADDR, and IP_TRANSPARENT / IPV6_TRANSPARENT
// if asked; an IPv6 one is IPV6_V6ONLY (IPv4 has its own listener). Returns -1 and sets *error (and *err_no, if
// given, to the errno: EAFNOSUPPORT from a kernel without IPv6). |mark|: SO_MARK for the socket (0: none; needs
// CAP_NET_ADMIN). A listener's mark carries to its SYN-ACKs and the sockets it accepts.
int MakeListener(const net::IpAddr& addr, uint16_t port, bool transparent, uint32_t mark, std::string* error,
                 int* err_no = nullptr);
uint16_t LocalPort(int fd);

// Starts a non-blocking connect to |dst| from |src_ip| (ignored for kNone; the same family as |dst|). Returns the fd
// (connect in progress or done) or -1 with *error set. |src_port| (0: any) keeps the client's own port, and with it
// the 4-tuple the server would have seen without the mesh; it also spares the kernel's search for a free port, which
// with many flows from one client address (their 4-tuples in TIME_WAIT here) was the agent's largest cost per new
// connection. A port that is taken here falls back to any port.
int StartConnect(const net::SockAddr& dst, const net::IpAddr& src_ip, SourceBind bind, uint32_t mark,
                 std::string* error, uint16_t src_port = 0);
// After EPOLLOUT on a connecting socket: 0 when connected, else the errno.
int ConnectResult(int fd);

void TuneStream(int fd);     // TCP_NODELAY
void ResetAndClose(int fd);  // SO_LINGER 0: the peer sees RST
// The peer (getpeername) or local (getsockname) address of |fd|, IPv4-mapped IPv6 as IPv4; false for other families.
bool PeerAddr(int fd, net::SockAddr* out);
bool LocalAddr(int fd, net::SockAddr* out);

// Raises RLIMIT_NOFILE's soft limit to the hard limit (each relayed connection uses up to 6 fds).
void RaiseFdLimit();

}  // namespace zm::proxy
