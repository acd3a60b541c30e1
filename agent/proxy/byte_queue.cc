#include "agent/proxy/byte_queue.h"

#include <algorithm>
#include <cstring>

namespace zm::proxy {

std::unique_ptr<Block> BlockPool::Take() {
  if (free_.empty()) return std::make_unique<Block>();
  auto b = std::move(free_.back());
  free_.pop_back();
  return b;
}

void BlockPool::Give(std::unique_ptr<Block> b) {
  if (free_.size() < max_cached_) free_.push_back(std::move(b));
}

void ByteQueue::WritableTail(uint8_t** p, size_t* len) {
  if (blocks_.empty() || tail_fill_ == kBlockSize) {
    blocks_.push_back(pool_->Take());
    tail_fill_ = 0;
    if (blocks_.size() == 1) head_off_ = 0;
  }
  *p = blocks_.back()->data + tail_fill_;
  *len = kBlockSize - tail_fill_;
}

void ByteQueue::Append(const uint8_t* p, size_t n) {
  while (n > 0) {
    uint8_t* dst;
    size_t room;
    WritableTail(&dst, &room);
    size_t k = std::min(room, n);
    std::memcpy(dst, p, k);
    Commit(k);
    p += k;
    n -= k;
  }
}

void ByteQueue::ReadableHead(const uint8_t** p, size_t* len) const {
  if (blocks_.empty()) {
    *p = nullptr;
    *len = 0;
    return;
  }
  size_t end = blocks_.size() == 1 ? tail_fill_ : kBlockSize;
  *p = blocks_.front()->data + head_off_;
  *len = end - head_off_;
}

void ByteQueue::Consume(size_t n) {
  size_ -= n;
  while (n > 0) {
    size_t end = blocks_.size() == 1 ? tail_fill_ : kBlockSize;
    size_t k = std::min(n, end - head_off_);
    head_off_ += k;
    n -= k;
    if (head_off_ == end && blocks_.size() > 1) {
      pool_->Give(std::move(blocks_.front()));
      blocks_.pop_front();
      head_off_ = 0;
    }
  }
  if (size_ == 0) Clear();  // the pool is the cache
}

void ByteQueue::Clear() {
  for (auto& b : blocks_) pool_->Give(std::move(b));
  blocks_.clear();
  head_off_ = tail_fill_ = size_ = 0;
}

}  // namespace zm::proxy
