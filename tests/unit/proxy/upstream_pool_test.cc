// The worker's pool of idle HTTP/1.1 upstream streams: reuse only for the same source, endpoint and protocol; a
// bound per key; streams closed by the peer or holding unread bytes are never handed out; the idle timeout.
#include "agent/proxy/upstream_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace zm::proxy {
namespace {

using namespace std::chrono_literals;

// Our end (as the pool holds it) and the delivery's end of one upstream stream.
std::pair<int, int> Stream() {
  int sp[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
  return {sp[0], sp[1]};
}

bool IsOpen(int fd) {
  return fcntl(fd, F_GETFD) != -1;
}

const UpstreamKey kA{"spiffe://cluster.local/ns/shop/sa/client@10.244.1.11",
                     net::SockAddr{*net::IpAddr::Parse("10.244.2.11"), 8080}, 1};

struct PoolTest : ::testing::Test {
  EventLoop loop;
  ProxyStats stats;
  UpstreamPool pool{loop, stats};
};

TEST_F(PoolTest, ReusedOnlyForTheSameSourceEndpointAndProtocol) {
  auto [ours, theirs] = Stream();
  pool.Put(kA, ours, 0ms);
  EXPECT_EQ(pool.idle(), 1u);
  UpstreamKey other_identity = kA;
  other_identity.source = "spiffe://cluster.local/ns/shop/sa/intruder@10.244.1.11";
  UpstreamKey other_ip = kA;
  other_ip.source = "spiffe://cluster.local/ns/shop/sa/client@10.244.1.12";
  UpstreamKey other_endpoint = kA;
  other_endpoint.endpoint.port = 8081;
  UpstreamKey other_family = kA;  // the same pod over IPv6 is another upstream
  other_family.endpoint.ip = *net::IpAddr::Parse("fd00:10:244:2::b");
  UpstreamKey other_protocol = kA;
  other_protocol.protocol = 2;
  for (const auto& k : {other_identity, other_ip, other_endpoint, other_family, other_protocol})
    EXPECT_EQ(pool.Take(k), -1);
  EXPECT_EQ(pool.Take(kA), ours);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_EQ(pool.Take(kA), -1);  // taken: it is the caller's now
  EXPECT_EQ(stats.http_upstream_reused.load(), 1u);
  close(ours);
  close(theirs);
}

TEST_F(PoolTest, ClosedOrDirtyStreamsAreNeverHandedOut) {
  auto [closed, closed_peer] = Stream();
  auto [dirty, dirty_peer] = Stream();
  auto [good, good_peer] = Stream();
  pool.Put(kA, good, 0ms);
  pool.Put(kA, closed, 0ms);
  pool.Put(kA, dirty, 0ms);
  EXPECT_EQ(pool.idle(), 3u);
  close(closed_peer);                              // the tunnel went away while idle
  ASSERT_EQ(write(dirty_peer, "HTTP/1.1", 8), 8);  // bytes nobody asked for
  EXPECT_EQ(pool.Take(kA), good);  // the two most recent are skipped (and closed), the healthy one comes back
  EXPECT_FALSE(IsOpen(closed));
  EXPECT_FALSE(IsOpen(dirty));
  // A stream that is already unhealthy when offered is closed at once.
  auto [late, late_peer] = Stream();
  ASSERT_EQ(write(late_peer, "x", 1), 1);
  pool.Put(kA, late, 0ms);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_FALSE(IsOpen(late));
  for (int fd : {good, good_peer, dirty_peer, late_peer}) close(fd);
}

TEST_F(PoolTest, BoundedPerKey) {
  std::vector<int> peers;
  for (size_t i = 0; i < UpstreamPool::kMaxIdlePerKey + 3; ++i) {
    auto [ours, theirs] = Stream();
    pool.Put(kA, ours, 0ms);
    peers.push_back(theirs);
  }
  EXPECT_EQ(pool.idle(), UpstreamPool::kMaxIdlePerKey);
  UpstreamKey other = kA;
  other.endpoint.port = 7;
  auto [ours, theirs] = Stream();
  pool.Put(other, ours, 0ms);  // another key has its own bound
  EXPECT_EQ(pool.idle(), UpstreamPool::kMaxIdlePerKey + 1);
  peers.push_back(theirs);
  for (int fd : peers) close(fd);
}

TEST_F(PoolTest, IdleTimeoutClosesStreams) {
  auto [short_lived, p1] = Stream();
  auto [default_lived, p2] = Stream();
  pool.Put(kA, short_lived, 5s);     // a ServicePolicy idleTimeout
  pool.Put(kA, default_lived, 0ms);  // the default, 60 s
  auto now = EventLoop::Clock::now();
  pool.Expire(now + 10s);
  EXPECT_EQ(pool.idle(), 1u);
  EXPECT_FALSE(IsOpen(short_lived));
  pool.Expire(now + 61s);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_FALSE(IsOpen(default_lived));
  close(p1);
  close(p2);
}

}  // namespace
}  // namespace zm::proxy
