#include "agent/proxy/tls_socket_bio.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

namespace zm::proxy {
namespace {

// Several full TLS records (16 KiB of plaintext each) per read(2) in a bulk transfer. The buffer exists only while
// it holds bytes or the socket has more: an idle connection keeps none.
constexpr size_t kReadAhead = 64 * 1024;

struct State {
  int fd = -1;
  size_t head = 0;  // next byte to hand to BoringSSL
  size_t tail = 0;  // end of the bytes read
  bool drained = false;
  std::unique_ptr<unsigned char[]> buf;
};

// The errno values BoringSSL's own socket BIO treats as "try again" (bio_errno_should_retry).
bool ShouldRetry() {
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOTCONN || errno == EPROTO ||
         errno == EINPROGRESS || errno == EALREADY;
}

int Read(BIO* b, char* out, int len) {
  auto* st = static_cast<State*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (st->head == st->tail) {
    st->head = st->tail = 0;
    if (!st->buf) st->buf.reset(new (std::nothrow) unsigned char[kReadAhead]);
    unsigned char* dst = st->buf ? st->buf.get() : reinterpret_cast<unsigned char*>(out);
    size_t cap = st->buf ? kReadAhead : static_cast<size_t>(len);  // out of memory: a plain socket read
    ssize_t n = read(st->fd, dst, cap);
    if (n <= 0) {
      st->drained = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      if (n < 0 && ShouldRetry()) BIO_set_retry_read(b);
      st->buf.reset();
      return n == 0 ? 0 : -1;
    }
    st->drained = st->buf && static_cast<size_t>(n) < cap;
    if (!st->buf) return static_cast<int>(n);
    st->tail = static_cast<size_t>(n);
  }
  size_t k = std::min(static_cast<size_t>(len), st->tail - st->head);
  std::memcpy(out, st->buf.get() + st->head, k);
  st->head += k;
  if (st->head == st->tail && st->drained) st->buf.reset();
  return static_cast<int>(k);
}

int Write(BIO* b, const char* in, int len) {
  auto* st = static_cast<State*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t n = send(st->fd, in, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && ShouldRetry()) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

long Ctrl(BIO* b, int cmd, long, void* ptr) {
  auto* st = static_cast<State*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_C_GET_FD:
      if (ptr != nullptr) *static_cast<int*>(ptr) = st->fd;
      return st->fd;
    case BIO_CTRL_PENDING:
      return static_cast<long>(st->tail - st->head);
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

int Destroy(BIO* b) {
  delete static_cast<State*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 0);
  return 1;
}

const BIO_METHOD* Method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "zeromesh read-ahead socket");
    if (m != nullptr) {
      BIO_meth_set_read(m, Read);
      BIO_meth_set_write(m, Write);
      BIO_meth_set_ctrl(m, Ctrl);
      BIO_meth_set_destroy(m, Destroy);
    }
    return m;
  }();
  return method;
}

}  // namespace

BIO* NewTlsSocketBio(int fd) {
  const BIO_METHOD* m = Method();
  if (m == nullptr) return nullptr;
  auto* st = new (std::nothrow) State;
  if (st == nullptr) return nullptr;
  st->fd = fd;
  BIO* b = BIO_new(m);
  if (b == nullptr) {
    delete st;
    return nullptr;
  }
  BIO_set_data(b, st);
  BIO_set_init(b, 1);
  return b;
}

bool TlsSocketBioDrained(BIO* bio) {
  auto* st = static_cast<State*>(BIO_get_data(bio));
  return st != nullptr && st->drained && st->head == st->tail;
}

}  // namespace zm::proxy
