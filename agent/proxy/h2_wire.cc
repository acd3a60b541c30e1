#include "agent/proxy/h2_wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zm::proxy {
namespace {

constexpr size_t kOutCap = 256 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

H2Wire::~H2Wire() {
  if (h2 != nullptr) nghttp2_session_del(h2);
}

bool H2Wire::Read(std::string* why) {
  uint8_t buf[kReadChunk];
  while (readable && !eof && h2 != nullptr) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      ssize_t rv = nghttp2_session_mem_recv(h2, buf, static_cast<size_t>(n));
      if (rv < 0) {
        *why = std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv));
        return false;
      }
      continue;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      readable = false;
      break;
    }
    *why = std::string("read: ") + std::strerror(errno);
    return false;
  }
  return true;
}

bool H2Wire::Write(std::string* why) {
  if (h2 == nullptr) return true;
  for (;;) {
    while (out.size() < kOutCap) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(h2, &data);
      if (n < 0) {
        *why = std::string("HTTP/2 send: ") + nghttp2_strerror(static_cast<int>(n));
        return false;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out.empty() || !writable) return true;
    size_t written = 0;
    while (written < out.size()) {
      ssize_t n = send(fd, out.data() + written, out.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        written += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        writable = false;
        break;
      }
      *why = std::string("write: ") + std::strerror(errno);
      return false;
    }
    out.erase(0, written);
    if (!writable || !nghttp2_session_want_write(h2)) return true;
  }
}

bool H2Wire::Done() const {
  return h2 == nullptr || (out.empty() && !nghttp2_session_want_read(h2) && !nghttp2_session_want_write(h2));
}

}  // namespace zm::proxy
