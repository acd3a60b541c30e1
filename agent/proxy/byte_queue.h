// A FIFO of fixed 64 KiB blocks recycled through a per-worker pool: no allocation per byte or per read, and memory
// returns to the pool as soon as a direction drains. The pool gives back to the kernel what a burst left unused.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace zm::proxy {

constexpr size_t kBlockSize = 64 * 1024;

// Own pages (mmap), not the heap: a freed block goes straight back to the kernel instead of staying resident in a
// malloc arena, and a new one is not zero-filled (untouched pages cost nothing until data is written to them).
struct Block {
  uint8_t data[kBlockSize];
  static void* operator new(size_t size);
  static void operator delete(void* p, size_t size);
};

class BlockPool {
 public:
  // |keep|: blocks Trim() never frees, so a worker that went quiet still relays its next request (a block in the
  // stream's queue, one in its HBONE connection's) without a new mapping. A kept block stays resident as far as it was
  // ever filled, after a bulk transfer all 64 KiB: more would cost an idle agent that much each.
  explicit BlockPool(size_t max_cached = 1024, size_t keep = 2) : max_cached_(max_cached), keep_(keep) {}
  std::unique_ptr<Block> Take();
  void Give(std::unique_ptr<Block> b);
  // Frees the cached blocks that no Take() needed since the previous Trim() (beyond |keep|): the worker calls it on
  // a timer, so a burst's blocks are returned a period or two after it while a steady flow keeps its working set.
  // Returns how many it freed.
  size_t Trim();
  size_t cached() const { return free_.size(); }

 private:
  size_t max_cached_;
  size_t keep_;
  size_t low_ = 0;  // fewest cached blocks since the last Trim()
  std::vector<std::unique_ptr<Block>> free_;
};

class ByteQueue {
 public:
  explicit ByteQueue(BlockPool* pool) : pool_(pool) {}
  ~ByteQueue() { Clear(); }
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Contiguous free space at the tail (allocates a block when the last one is full); then Commit() what was filled.
  // A queue left empty after WritableTail() (nothing was read) should be Clear()ed, else it keeps its block.
  void WritableTail(uint8_t** p, size_t* len);
  void Commit(size_t n) { tail_fill_ += n, size_ += n; }
  // The same for one readv(2) of up to |want| bytes: WritableTail() and, while |want| needs them and |max| allows,
  // fresh blocks after it, as iovecs (returns how many). CommitVec() must follow, also when nothing was read: the
  // blocks left unfilled go back to the pool.
  size_t WritableTailVec(iovec* iov, size_t max, size_t want);
  void CommitVec(size_t n);
  void Append(const uint8_t* p, size_t n);

  // Contiguous readable bytes at the head; then Consume() what was used.
  void ReadableHead(const uint8_t** p, size_t* len) const;
  void Consume(size_t n);
  void Clear();

 private:
  size_t count() const { return blocks_.size() - first_; }

  BlockPool* pool_;
  // blocks_[first_..] are live; a vector (not a deque) because an empty queue must cost no allocation: every
  // connection has two of them and most are idle.
  std::vector<std::unique_ptr<Block>> blocks_;
  size_t first_ = 0;
  size_t head_off_ = 0;   // read offset in the first block
  size_t tail_fill_ = 0;  // bytes used in the last block
  size_t size_ = 0;
  size_t spare_ = 0;  // blocks WritableTailVec() added after the tail, until CommitVec()
};

}  // namespace zm::proxy
