#include "agent/proxy/tls_socket_bio.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace zm::proxy {
namespace {

// Sixteen full TLS records (16 KiB of plaintext each) per read(2) in a bulk transfer. The buffer is a worker's
// (page_buffers.h) and held only while it holds bytes or the socket has more: an idle connection keeps none.
constexpr size_t kReadAhead = PageBuffers::kSize;
// Seven full records (16 KiB + 22 bytes each) per send(2) in a bulk transfer; like the read buffer, held only while
// it holds bytes.
constexpr size_t kWriteBatch = 128 * 1024;
static_assert(kWriteBatch <= PageBuffers::kSize);

struct State {
  int fd = -1;
  PageBuffers* buffers = nullptr;
  size_t head = 0;  // next byte to hand to BoringSSL
  size_t tail = 0;  // end of the bytes read
  bool drained = false;
  PageBuffer buf;
  // Write side: wbuf[wsent, wlen) is written by BoringSSL but not sent yet.
  bool corked = false;
  size_t wsent = 0;
  size_t wlen = 0;
  PageBuffer wbuf;
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
    if (!st->buf) st->buf = st->buffers->Take();
    unsigned char* dst = st->buf ? st->buf.data() : reinterpret_cast<unsigned char*>(out);
    size_t cap = st->buf ? kReadAhead : static_cast<size_t>(len);  // out of memory: a plain socket read
    ssize_t n = read(st->fd, dst, cap);
    if (n <= 0) {
      st->drained = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      if (n < 0 && ShouldRetry()) BIO_set_retry_read(b);
      st->buf = PageBuffer();
      return n == 0 ? 0 : -1;
    }
    st->drained = st->buf && static_cast<size_t>(n) < cap;
    if (!st->buf) return static_cast<int>(n);
    st->tail = static_cast<size_t>(n);
    st->buf.Filled(st->tail);
  }
  size_t k = std::min(static_cast<size_t>(len), st->tail - st->head);
  std::memcpy(out, st->buf.data() + st->head, k);
  st->head += k;
  if (st->head == st->tail && st->drained) st->buf = PageBuffer();
  return static_cast<int>(k);
}

// Sends the held bytes: 1 when none are left, 0 when the socket is full, -1 on an error (errno).
int SendHeld(State* st) {
  while (st->wsent < st->wlen) {
    ssize_t n = send(st->fd, st->wbuf.data() + st->wsent, st->wlen - st->wsent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    st->wsent += static_cast<size_t>(n);
  }
  st->wsent = st->wlen = 0;
  st->wbuf = PageBuffer();
  return 1;
}

int Write(BIO* b, const char* in, int len) {
  auto* st = static_cast<State*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  size_t n = static_cast<size_t>(len);
  if (st->corked) {
    if (st->wlen + n > kWriteBatch) {
      // The batch is full: it goes first; if the socket does not take all of it, BoringSSL retries this record.
      int r = SendHeld(st);
      if (r < 0) return -1;
      if (r == 0) {
        BIO_set_retry_write(b);
        return -1;
      }
    }
    if (st->wlen + n <= kWriteBatch) {
      if (!st->wbuf) st->wbuf = st->buffers->Take();
      if (st->wbuf) {
        std::memcpy(st->wbuf.data() + st->wlen, in, n);
        st->wlen += n;
        st->wbuf.Filled(st->wlen);
        return len;
      }
    }
    // Larger than a batch, or out of memory: nothing is held now, it is sent as it comes.
  } else if (st->wsent < st->wlen) {
    // Bytes held from before go first; a write may not overtake them.
    int r = SendHeld(st);
    if (r < 0) return -1;
    if (r == 0) {
      BIO_set_retry_write(b);
      return -1;
    }
  }
  ssize_t sent = send(st->fd, in, n, MSG_NOSIGNAL);
  if (sent < 0 && ShouldRetry()) BIO_set_retry_write(b);
  return static_cast<int>(sent);
}

long Ctrl(BIO* b, int cmd, long, void* ptr) {
  auto* st = static_cast<State*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_C_GET_FD:
      if (ptr != nullptr) *static_cast<int*>(ptr) = st->fd;
      return st->fd;
    case BIO_CTRL_PENDING:
      return static_cast<long>(st->tail - st->head);
    case BIO_CTRL_FLUSH: {
      BIO_clear_retry_flags(b);
      int r = SendHeld(st);
      if (r == 0) BIO_set_retry_write(b);
      return r > 0 ? 1 : -1;
    }
    case BIO_CTRL_WPENDING:
      return static_cast<long>(st->wlen - st->wsent);
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

BIO* NewTlsSocketBio(int fd, PageBuffers* buffers) {
  const BIO_METHOD* m = Method();
  if (m == nullptr) return nullptr;
  auto* st = new (std::nothrow) State;
  if (st == nullptr) return nullptr;
  st->fd = fd;
  st->buffers = buffers;
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

bool TlsSocketBioCork(BIO* bio, bool on) {
  auto* st = static_cast<State*>(BIO_get_data(bio));
  if (st == nullptr) return true;
  st->corked = on;
  return on || SendHeld(st) >= 0;
}

bool TlsSocketBioFlush(BIO* bio, bool* done) {
  auto* st = static_cast<State*>(BIO_get_data(bio));
  int r = st == nullptr ? 1 : SendHeld(st);
  *done = r > 0;
  return r >= 0;
}

size_t TlsSocketBioUnsent(BIO* bio) {
  auto* st = static_cast<State*>(BIO_get_data(bio));
  return st == nullptr ? 0 : st->wlen - st->wsent;
}

}  // namespace zm::proxy
