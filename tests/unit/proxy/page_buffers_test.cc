// PageBuffers: a quiet worker's large buffers give their pages back (checked with mincore(2), not by the pool's own
// bookkeeping), a busy one keeps them, and a period that needed no buffer unmaps all but |keep| of the free ones.
#include "agent/proxy/page_buffers.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace zm::proxy {
namespace {

// Resident bytes of the PageBuffers::kSize buffer at |p|, as the kernel sees them.
size_t Resident(const uint8_t* p) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec(PageBuffers::kSize / page);
  EXPECT_EQ(mincore(const_cast<uint8_t*>(p), PageBuffers::kSize, vec.data()), 0);
  size_t n = 0;
  for (unsigned char v : vec) n += (v & 1) ? page : 0;
  return n;
}

// Writes |n| bytes of |b| (faulting its pages in) and says so.
void Fill(PageBuffer& b, size_t n) {
  std::memset(b.data(), 0x5a, n);
  b.Filled(n);
}

TEST(PageBuffers, AQuietPeriodGivesABurstsPagesBackAndKeepsTheFirstRecord) {
  PageBuffers pool;
  uint8_t* p;
  {
    PageBuffer b = pool.Take();
    ASSERT_TRUE(b);
    p = b.data();
    Fill(b, PageBuffers::kSize);
  }
  EXPECT_EQ(Resident(p), PageBuffers::kSize);
  EXPECT_EQ(pool.cached(), 1u);
  pool.Trim();  // the period that had the burst: it needed all of it
  EXPECT_EQ(Resident(p), PageBuffers::kSize);
  size_t freed = pool.Trim();  // a quiet period
  EXPECT_GT(freed, PageBuffers::kSize * 3 / 4);
  EXPECT_EQ(pool.cached(), 1u);  // |keep| stays mapped
  size_t left = Resident(p);
  EXPECT_GE(left, 16u * 1024);  // a full TLS record still fits without a fault
  EXPECT_LE(left, 32u * 1024);
  EXPECT_EQ(pool.resident_bound(), left);
  // The same mapping comes back, readable and writable; the returned pages read as zeros.
  PageBuffer again = pool.Take();
  ASSERT_EQ(again.data(), p);
  EXPECT_EQ(p[0], 0x5a);
  EXPECT_EQ(p[PageBuffers::kSize - 1], 0);
  Fill(again, PageBuffers::kSize);
  EXPECT_EQ(Resident(p), PageBuffers::kSize);
}

TEST(PageBuffers, ASteadyBulkFlowKeepsItsPages) {
  PageBuffers pool;
  uint8_t* p = nullptr;
  for (int period = 0; period < 3; ++period) {
    for (int i = 0; i < 4; ++i) {
      PageBuffer b = pool.Take();
      ASSERT_TRUE(b);
      p = b.data();
      Fill(b, PageBuffers::kSize);
    }
    EXPECT_EQ(pool.Trim(), 0u);
    EXPECT_EQ(Resident(p), PageBuffers::kSize);
  }
}

TEST(PageBuffers, SmallUsesKeepOnlyWhatTheyWrite) {
  PageBuffers pool;
  uint8_t* p;
  {
    PageBuffer b = pool.Take();
    p = b.data();
    Fill(b, PageBuffers::kSize);
  }
  pool.Trim();
  {
    PageBuffer b = pool.Take();  // interactive traffic: 64 KiB at most per use
    Fill(b, 64 * 1024);
  }
  pool.Trim();
  EXPECT_EQ(Resident(p), 64u * 1024);
}

TEST(PageBuffers, UnneededFreeBuffersAreUnmappedButKeepStays) {
  PageBuffers pool(/*max_cached=*/8, /*keep=*/1);
  {
    std::vector<PageBuffer> burst;
    for (int i = 0; i < 3; ++i) burst.push_back(pool.Take());
  }
  EXPECT_EQ(pool.cached(), 3u);
  pool.Trim();  // they were all needed in this period
  EXPECT_EQ(pool.cached(), 3u);
  pool.Trim();  // none was needed in this one
  EXPECT_EQ(pool.cached(), 1u);
  pool.Trim();
  EXPECT_EQ(pool.cached(), 1u);
}

TEST(PageBuffers, MoreThanMaxCachedAreUnmappedOnReturn) {
  PageBuffers pool(/*max_cached=*/2, /*keep=*/1);
  {
    std::vector<PageBuffer> burst;
    for (int i = 0; i < 5; ++i) burst.push_back(pool.Take());
    PageBuffer moved = std::move(burst[0]);
    EXPECT_FALSE(burst[0]);
    EXPECT_TRUE(moved);
  }
  EXPECT_EQ(pool.cached(), 2u);
}

TEST(PageBuffers, TheScratchGivesBackWhatAQuietPeriodDidNotNeed) {
  PageBuffers pool;
  uint8_t* s = pool.scratch();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(pool.scratch(), s);  // always the same buffer
  std::memset(s, 1, PageBuffers::kSize);
  pool.ScratchFilled(PageBuffers::kSize);
  pool.Trim();
  EXPECT_EQ(Resident(s), PageBuffers::kSize);
  pool.ScratchFilled(1000);  // small records only
  pool.Trim();
  size_t left = Resident(s);
  EXPECT_GE(left, 16u * 1024);
  EXPECT_LE(left, 32u * 1024);
  EXPECT_EQ(s[0], 1);
}

}  // namespace
}  // namespace zm::proxy
