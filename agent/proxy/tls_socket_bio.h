// The BIO under an HBONE connection's TLS: a socket BIO that reads ahead. BoringSSL asks its BIO for exactly the bytes
// it needs next (a record's 5-byte header, then its body), and a plain socket BIO turns each ask into a read(2): with
// the read that ends in EAGAIN, three reads per received record. This one reads up to kReadAhead bytes at once, serves
// BoringSSL from that buffer, and remembers whether its last read(2) came back short (the socket was drained then), so
// an edge-triggered reader can stop without a last read that only says EAGAIN.
//
// The write side batches: while corked (TlsSocketBioCork), the records BoringSSL writes are collected (up to
// kWriteBatch bytes) and go out in one send(2) when the batch is full or the BIO is uncorked, instead of one send per
// 16 KiB record. Uncorked, a write goes out at once (after any bytes still held), so the handshake, alerts and
// interactive traffic see no delay.
#pragma once

#include <openssl/bio.h>

#include "agent/proxy/page_buffers.h"

namespace zm::proxy {

// A BIO on |fd| for SSL_set_bio (reads ahead, writes with send(MSG_NOSIGNAL)); it does not close |fd|. Its read-ahead
// and write batch are borrowed from |buffers| (which must outlive it) while they hold bytes. nullptr when out of
// memory.
BIO* NewTlsSocketBio(int fd, PageBuffers* buffers);

// True when |bio| (from NewTlsSocketBio) holds no read-ahead bytes and its last read(2) came back short or EAGAIN: more
// bytes arrive with a new edge of the edge-triggered epoll. A socket that reported a FIN or an error (EPOLLRDHUP,
// EPOLLHUP, EPOLLERR) must still be read until the read returns 0 or fails: that edge has been consumed already.
bool TlsSocketBioDrained(BIO* bio);

// Cork (|on|) or uncork |bio|'s writes. Uncorking sends what was collected. Returns false on a socket error; true
// otherwise, even when the socket took only part (the rest waits for TlsSocketBioFlush after EPOLLOUT).
bool TlsSocketBioCork(BIO* bio, bool on);

// Sends the bytes |bio| still holds. False on a socket error; *done: nothing is left (false: the socket is full).
bool TlsSocketBioFlush(BIO* bio, bool* done);

// Bytes written by BoringSSL that have not reached the socket yet.
size_t TlsSocketBioUnsent(BIO* bio);

}  // namespace zm::proxy
