// An nghttp2 session on a non-blocking stream socket without TLS (the L7 path's h2c client connection, or a socketpair
// end toward an upstream): socket bytes feed the session, and what the session sends goes out through a bounded queue
// (the session is not asked for more frames while the queue is over its cap, so a slow peer throttles its senders).
#pragma once

#include <nghttp2/nghttp2.h>

#include <string>

namespace zm::proxy {

struct H2Wire {
  int fd = -1;
  nghttp2_session* h2 = nullptr;
  std::string out;  // frames not written to fd yet
  bool readable = false;
  bool writable = false;
  bool eof = false;  // the peer closed its side

  ~H2Wire();  // deletes the session (no callbacks from it after that); the owner closes fd
  // Reads until the socket would block, feeding the session. False on a socket or protocol error (*why set); a clean
  // close only sets eof.
  bool Read(std::string* why);
  // Takes frames from the session while the queue has room and writes them. False on an error (*why set).
  bool Write(std::string* why);
  // Nothing is left to do: the session wants neither to read nor to write, and the queue is empty.
  bool Done() const;
};

}  // namespace zm::proxy
