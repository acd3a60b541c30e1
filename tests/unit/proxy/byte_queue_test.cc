// ByteQueue keeps bytes in order across blocks and holds no block once empty; BlockPool::Trim frees only what a whole
// period did not need.
#include "agent/proxy/byte_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>

namespace zm::proxy {
namespace {

std::string Drain(ByteQueue& q, size_t step) {
  std::string out;
  while (!q.empty()) {
    const uint8_t* p;
    size_t len;
    q.ReadableHead(&p, &len);
    if (len == 0) {
      ADD_FAILURE() << "queue of " << q.size() << " bytes has nothing readable at its head";
      break;
    }
    size_t k = std::min(len, step);
    out.append(reinterpret_cast<const char*>(p), k);
    q.Consume(k);
  }
  return out;
}

TEST(ByteQueue, KeepsOrderAcrossBlocksAndReturnsThemWhenDrained) {
  BlockPool pool;
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    ByteQueue q(&pool);
    std::string in;
    std::string out;
    for (int i = 0; i < 40; ++i) {
      size_t n = rng() % (3 * kBlockSize / 2);
      std::string chunk(n, '\0');
      for (auto& c : chunk) c = static_cast<char>('a' + rng() % 26);
      q.Append(reinterpret_cast<const uint8_t*>(chunk.data()), n);
      in += chunk;
      if (i % 3 == 0) {  // drain part of it, in uneven steps
        size_t want = std::min(q.size(), static_cast<size_t>(rng() % (2 * kBlockSize)));
        while (want > 0) {
          const uint8_t* p;
          size_t len;
          q.ReadableHead(&p, &len);
          size_t k = std::min(len, want);
          out.append(reinterpret_cast<const char*>(p), k);
          q.Consume(k);
          want -= k;
        }
      }
      ASSERT_EQ(q.size(), in.size() - out.size());
    }
    out += Drain(q, 1000 + rng() % kBlockSize);
    ASSERT_EQ(out, in);
    // Drained: every block is back in the pool, none is left for the destructor to return.
    size_t cached = pool.cached();
    EXPECT_GT(cached, 0u);
    q.Clear();
    EXPECT_EQ(pool.cached(), cached);
  }
}

TEST(ByteQueue, EmptyQueueHoldsNoBlockAfterClear) {
  BlockPool pool;
  {
    ByteQueue q(&pool);
    uint8_t* p;
    size_t len;
    q.WritableTail(&p, &len);  // as before a read() that returns EAGAIN
    EXPECT_EQ(len, kBlockSize);
    EXPECT_EQ(pool.cached(), 0u);
    q.Clear();
    EXPECT_EQ(pool.cached(), 1u);
    q.WritableTail(&p, &len);
    p[0] = 'x';
    q.Commit(1);
    EXPECT_EQ(pool.cached(), 0u);
    q.Consume(1);  // drained: the block goes back at once
    EXPECT_EQ(pool.cached(), 1u);
    EXPECT_TRUE(q.empty());
  }
  EXPECT_EQ(pool.cached(), 1u);
}

// A readv into several blocks: the bytes land in order whatever the fill, mixed with single-block writes and reads,
// and the blocks a short read left unfilled go back to the pool at once.
TEST(ByteQueue, VectorWritesKeepOrderAndReturnUnfilledBlocks) {
  BlockPool pool;
  std::mt19937 rng(11);
  ByteQueue q(&pool);
  std::string in;
  std::string out;
  for (int i = 0; i < 200; ++i) {
    iovec iov[4];
    size_t want = 1 + rng() % (4 * kBlockSize);
    size_t parts = q.WritableTailVec(iov, 4, want);
    size_t room = 0;
    for (size_t k = 0; k < parts; ++k) room += iov[k].iov_len;
    ASSERT_TRUE(parts == 4 || room >= want) << "parts " << parts << " room " << room << " want " << want;
    size_t n = rng() % 4 == 0 ? 0 : rng() % (room + 1);  // as a readv that returned EAGAIN, short or full
    for (size_t k = 0, left = n; k < parts && left > 0; ++k) {
      size_t m = std::min(left, iov[k].iov_len);
      auto* d = static_cast<uint8_t*>(iov[k].iov_base);
      for (size_t j = 0; j < m; ++j) d[j] = static_cast<uint8_t>('a' + (in.size() + j) % 26);
      in.append(reinterpret_cast<char*>(d), m);
      left -= m;
    }
    q.CommitVec(n);
    ASSERT_EQ(q.size(), in.size() - out.size());
    if (i % 5 == 0) {
      const char* txt = "single";
      q.Append(reinterpret_cast<const uint8_t*>(txt), 6);
      in += txt;
    }
    if (i % 7 == 0) out += Drain(q, 1 + rng() % kBlockSize);
    if (q.empty()) q.Clear();
  }
  out += Drain(q, 4096);
  EXPECT_EQ(out, in);
  q.Clear();
  // The blocks a short readv left unfilled are back in the pool at once, the filled ones when drained.
  size_t cached = pool.cached();
  ByteQueue probe(&pool);
  iovec iov[4];
  ASSERT_EQ(probe.WritableTailVec(iov, 4, 4 * kBlockSize), 4u);
  probe.CommitVec(kBlockSize + 10);  // two blocks used, two unfilled ones back in the pool
  EXPECT_EQ(probe.size(), kBlockSize + 10);
  EXPECT_EQ(pool.cached() + 2, std::max<size_t>(cached, 4));
  probe.Consume(probe.size());
  EXPECT_EQ(pool.cached(), std::max<size_t>(cached, 4));
}

// Reads that end exactly on a block boundary, from an empty queue and after a partly filled block.
TEST(ByteQueue, VectorWritesEndingOnABlockBoundary) {
  BlockPool pool;
  for (size_t before : {size_t{0}, size_t{100}}) {
    for (size_t blocks : {size_t{1}, size_t{2}, size_t{3}, size_t{4}}) {
      ByteQueue q(&pool);
      std::string in(before, 'p');
      if (before > 0) q.Append(reinterpret_cast<const uint8_t*>(in.data()), before);
      iovec iov[4];
      size_t parts = q.WritableTailVec(iov, 4, 4 * kBlockSize);
      ASSERT_EQ(parts, 4u);
      size_t n = blocks * kBlockSize - before;  // the last byte lands at the end of block |blocks|
      for (size_t k = 0, left = n; k < parts && left > 0; ++k) {
        size_t m = std::min(left, iov[k].iov_len);
        std::memset(iov[k].iov_base, static_cast<int>('a' + k), m);
        in.append(static_cast<const char*>(iov[k].iov_base), m);
        left -= m;
      }
      q.CommitVec(n);
      ASSERT_EQ(q.size(), blocks * kBlockSize);
      q.Append(reinterpret_cast<const uint8_t*>("z"), 1);  // goes into a new block after the full ones
      in += "z";
      EXPECT_EQ(Drain(q, kBlockSize), in) << before << " bytes before, " << blocks << " blocks";
    }
  }
}

TEST(BlockPool, TrimFreesOnlyBlocksUnusedForAWholePeriod) {
  BlockPool pool(/*max_cached=*/100, /*keep=*/2);
  std::vector<std::unique_ptr<Block>> out;
  for (int i = 0; i < 10; ++i) out.push_back(pool.Take());
  for (auto& b : out) pool.Give(std::move(b));
  out.clear();
  EXPECT_EQ(pool.cached(), 10u);
  // The burst took every cached block during this period: nothing was idle for a whole one yet.
  EXPECT_EQ(pool.Trim(), 0u);
  EXPECT_EQ(pool.cached(), 10u);
  // A steady user of 3 blocks during the next period: those 3 stay, the other 7 (minus |keep|) go.
  for (int i = 0; i < 3; ++i) out.push_back(pool.Take());
  for (auto& b : out) pool.Give(std::move(b));
  out.clear();
  EXPECT_EQ(pool.Trim(), 7u);
  EXPECT_EQ(pool.cached(), 3u);
  // Idle from now on: down to |keep|, never below.
  EXPECT_EQ(pool.Trim(), 1u);
  EXPECT_EQ(pool.cached(), 2u);
  EXPECT_EQ(pool.Trim(), 0u);
  EXPECT_EQ(pool.cached(), 2u);
}

TEST(BlockPool, CachesAtMostMaxCached) {
  BlockPool pool(/*max_cached=*/3, /*keep=*/0);
  std::vector<std::unique_ptr<Block>> out;
  for (int i = 0; i < 5; ++i) out.push_back(pool.Take());
  for (auto& b : out) pool.Give(std::move(b));
  EXPECT_EQ(pool.cached(), 3u);
}

}  // namespace
}  // namespace zm::proxy
