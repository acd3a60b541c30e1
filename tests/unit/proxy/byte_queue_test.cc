// ByteQueue keeps bytes in order across blocks and holds no block once empty; BlockPool::Trim frees only what a whole
// period did not need.
#include "agent/proxy/byte_queue.h"

#include <gtest/gtest.h>

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
    EXPECT_GT(len, 0u);
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
