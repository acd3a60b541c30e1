// The read-ahead socket BIO under HBONE TLS: BoringSSL's small asks are served from one read(2), "drained" is reported
// only when the last read(2) was short and nothing is buffered, EAGAIN and EOF look as they do for the socket BIO.
// The write side: while corked, records are held and leave together (in order, behind any bytes held before).
// (TLS over it end to end: proxy_test and hbone_tls_test, whose HBONE sessions all use it.)
#include "agent/proxy/tls_socket_bio.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace zm::proxy {
namespace {

struct Pair {
  int a = -1, b = -1;  // a: the BIO's side (non-blocking), b: the peer
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    a = sv[0];
    b = sv[1];
    fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK);
  }
  ~Pair() {
    close(a);
    close(b);
  }
};

std::string ReadN(BIO* bio, size_t n) {
  std::string out(n, '\0');
  int got = BIO_read(bio, out.data(), static_cast<int>(n));
  out.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return out;
}

TEST(TlsSocketBio, ServesSmallReadsFromOneReadAndReportsDrainedOnlyWhenEmpty) {
  PageBuffers buffers;
  Pair p;
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  ASSERT_NE(bio, nullptr);
  EXPECT_FALSE(TlsSocketBioDrained(bio));  // nothing read yet: not known to be drained
  std::string msg = "hello, world: a record header and then its body";
  ASSERT_EQ(write(p.b, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  EXPECT_EQ(ReadN(bio, 5), msg.substr(0, 5));
  EXPECT_FALSE(TlsSocketBioDrained(bio));  // the rest is buffered
  EXPECT_EQ(BIO_pending(bio), msg.size() - 5);
  // Bytes that arrive now stay in the socket: the buffered ones come first, and only they.
  ASSERT_EQ(write(p.b, "XY", 2), 2);
  EXPECT_EQ(ReadN(bio, 1000), msg.substr(5));
  EXPECT_TRUE(TlsSocketBioDrained(bio));  // the read(2) was short and the buffer is empty
  EXPECT_EQ(ReadN(bio, 1000), "XY");
  EXPECT_EQ(BIO_read(bio, msg.data(), 10), -1);
  EXPECT_TRUE(BIO_should_retry(bio));
  EXPECT_TRUE(BIO_should_read(bio));
  EXPECT_TRUE(TlsSocketBioDrained(bio));
  BIO_free(bio);
}

TEST(TlsSocketBio, AFullReadIsNotDrainedAndEofReadsZero) {
  PageBuffers buffers;
  Pair p;
  int big = 256 * 1024;
  setsockopt(p.b, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  std::string msg(100000, 'z');  // more than the read-ahead buffer
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(write(p.b, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  shutdown(p.b, SHUT_WR);
  std::string got = ReadN(bio, 1);
  EXPECT_FALSE(TlsSocketBioDrained(bio));  // the read(2) filled the buffer: more may wait in the socket
  while (got.size() < msg.size()) {
    std::string more = ReadN(bio, 7000);
    ASSERT_FALSE(more.empty());
    got += more;
  }
  EXPECT_EQ(got, msg);
  char c;
  EXPECT_EQ(BIO_read(bio, &c, 1), 0);  // EOF
  EXPECT_FALSE(BIO_should_retry(bio));
  BIO_free(bio);
}

TEST(TlsSocketBio, WritesUntilTheSocketIsFullThenAsksToRetry) {
  PageBuffers buffers;
  Pair p;
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  EXPECT_EQ(BIO_write(bio, "abc", 3), 3);
  char buf[3];
  ASSERT_EQ(read(p.b, buf, 3), 3);
  EXPECT_EQ(std::string(buf, 3), "abc");
  std::string chunk(64 * 1024, 'x');
  int n;
  int rounds = 0;
  while ((n = BIO_write(bio, chunk.data(), static_cast<int>(chunk.size()))) > 0 && ++rounds < 1000) {
  }
  EXPECT_EQ(n, -1);
  EXPECT_TRUE(BIO_should_retry(bio));
  EXPECT_TRUE(BIO_should_write(bio));
  int fd = -1;
  EXPECT_EQ(BIO_get_fd(bio, &fd), p.a);
  EXPECT_EQ(fd, p.a);
  BIO_free(bio);
  // The BIO does not own the descriptor: it is still open.
  EXPECT_NE(fcntl(p.a, F_GETFD), -1);
}

TEST(TlsSocketBio, AClosedPeerFailsAWriteWithoutSigpipeOrRetry) {
  PageBuffers buffers;
  Pair p;
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  close(p.b);
  p.b = -1;
  EXPECT_EQ(BIO_write(bio, "abc", 3), -1);
  EXPECT_FALSE(BIO_should_retry(bio));
  BIO_free(bio);
}

// What the peer can read now, without waiting.
std::string Available(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string Record(char c) {
  return std::string(16 * 1024 + 22, c);  // a full TLS record: 16 KiB of plaintext, header and tag
}

TEST(TlsSocketBio, CorkedRecordsLeaveTogetherWhenUncorked) {
  PageBuffers buffers;
  Pair p;
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  ASSERT_TRUE(TlsSocketBioCork(bio, true));
  std::string want;
  for (char c : {'a', 'b', 'c'}) {
    std::string r = Record(c);
    EXPECT_EQ(BIO_write(bio, r.data(), static_cast<int>(r.size())), static_cast<int>(r.size()));
    want += r;
  }
  EXPECT_EQ(Available(p.b), "");  // held
  EXPECT_EQ(TlsSocketBioUnsent(bio), want.size());
  EXPECT_EQ(BIO_wpending(bio), want.size());
  ASSERT_TRUE(TlsSocketBioCork(bio, false));
  EXPECT_EQ(TlsSocketBioUnsent(bio), 0u);
  EXPECT_EQ(Available(p.b), want);
  // Uncorked, a write goes out at once (interactive traffic, the handshake).
  EXPECT_EQ(BIO_write(bio, "hi", 2), 2);
  EXPECT_EQ(Available(p.b), "hi");
  BIO_free(bio);
}

TEST(TlsSocketBio, AFullBatchIsSentWhileStillCorked) {
  PageBuffers buffers;
  Pair p;
  int big = 1 << 20;
  setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  setsockopt(p.b, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  TlsSocketBioCork(bio, true);
  std::string all;
  for (int i = 0; i < 8; ++i) {
    std::string r = Record(static_cast<char>('a' + i));
    ASSERT_EQ(BIO_write(bio, r.data(), static_cast<int>(r.size())), static_cast<int>(r.size()));
    all += r;
  }
  // Seven records fit the 128 KiB batch: the eighth sent them and waits for the next batch or the uncork.
  std::string got = Available(p.b);
  EXPECT_EQ(got, all.substr(0, 7 * Record('x').size()));
  EXPECT_EQ(TlsSocketBioUnsent(bio), Record('x').size());
  EXPECT_EQ(BIO_flush(bio), 1);  // the handshake's flush sends what is held too
  got += Available(p.b);
  EXPECT_EQ(got, all);
  BIO_free(bio);
}

TEST(TlsSocketBio, HeldBytesGoFirstWhenTheSocketWasFull) {
  PageBuffers buffers;
  Pair p;
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  TlsSocketBioCork(bio, true);
  std::string sent;
  // Corked writes until the socket is full and the batch can take no more.
  for (int i = 0; i < 10000; ++i) {
    std::string r = Record(static_cast<char>('a' + i % 26));
    int n = BIO_write(bio, r.data(), static_cast<int>(r.size()));
    if (n < 0) {
      EXPECT_TRUE(BIO_should_retry(bio));
      EXPECT_TRUE(BIO_should_write(bio));
      break;
    }
    ASSERT_EQ(n, static_cast<int>(r.size()));
    sent += r;
  }
  ASSERT_TRUE(TlsSocketBioCork(bio, false));  // the socket takes what it can; the rest stays held
  ASSERT_GT(TlsSocketBioUnsent(bio), 0u);
  // Uncorked, a new write may not overtake the held bytes.
  EXPECT_EQ(BIO_write(bio, "tail", 4), -1);
  EXPECT_TRUE(BIO_should_retry(bio));
  std::string got;
  bool done = false;
  for (int i = 0; i < 100000 && !done; ++i) {
    got += Available(p.b);
    ASSERT_TRUE(TlsSocketBioFlush(bio, &done));
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(TlsSocketBioUnsent(bio), 0u);
  EXPECT_EQ(BIO_write(bio, "tail", 4), 4);
  got += Available(p.b);
  EXPECT_EQ(got, sent + "tail");
  BIO_free(bio);
}

TEST(TlsSocketBio, UncorkingToAClosedPeerFails) {
  PageBuffers buffers;
  Pair p;
  BIO* bio = NewTlsSocketBio(p.a, &buffers);
  TlsSocketBioCork(bio, true);
  EXPECT_EQ(BIO_write(bio, "abc", 3), 3);
  close(p.b);
  p.b = -1;
  EXPECT_FALSE(TlsSocketBioCork(bio, false));
  bool done = true;
  EXPECT_FALSE(TlsSocketBioFlush(bio, &done));
  EXPECT_FALSE(done);
  BIO_free(bio);
}

}  // namespace
}  // namespace zm::proxy
