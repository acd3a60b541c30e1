// A FIFO of fixed 64 KiB blocks recycled through a per-worker pool: no allocation per byte or per read, and memory
// returns to the pool as soon as a direction drains.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace zm::proxy {

constexpr size_t kBlockSize = 64 * 1024;

struct Block {
  uint8_t data[kBlockSize];
};

class BlockPool {
 public:
  explicit BlockPool(size_t max_cached = 1024) : max_cached_(max_cached) {}
  std::unique_ptr<Block> Take();
  void Give(std::unique_ptr<Block> b);

 private:
  size_t max_cached_;
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
  void WritableTail(uint8_t** p, size_t* len);
  void Commit(size_t n) { tail_fill_ += n, size_ += n; }
  void Append(const uint8_t* p, size_t n);

  // Contiguous readable bytes at the head; then Consume() what was used.
  void ReadableHead(const uint8_t** p, size_t* len) const;
  void Consume(size_t n);
  void Clear();

 private:
  BlockPool* pool_;
  std::deque<std::unique_ptr<Block>> blocks_;
  size_t head_off_ = 0;   // read offset in the first block
  size_t tail_fill_ = 0;  // bytes used in the last block
  size_t size_ = 0;
};

}  // namespace zm::proxy
