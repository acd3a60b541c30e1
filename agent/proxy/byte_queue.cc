#include "agent/proxy/byte_queue.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace zm::proxy {

void* Block::operator new(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void Block::operator delete(void* p, size_t size) {
  munmap(p, size);
}

std::unique_ptr<Block> BlockPool::Take() {
  if (free_.empty()) return std::unique_ptr<Block>(new Block);  // default-initialised: not zero-filled
  auto b = std::move(free_.back());
  free_.pop_back();
  low_ = std::min(low_, free_.size());
  return b;
}

void BlockPool::Give(std::unique_ptr<Block> b) {
  if (free_.size() < max_cached_) free_.push_back(std::move(b));
}

size_t BlockPool::Trim() {
  size_t n = std::min(low_, free_.size() > keep_ ? free_.size() - keep_ : 0);
  free_.erase(free_.begin(), free_.begin() + static_cast<ptrdiff_t>(n));  // the oldest: the hot ones are at the back
  if (free_.capacity() > 2 * free_.size() + 16) free_.shrink_to_fit();
  low_ = free_.size();
  return n;
}

void ByteQueue::WritableTail(uint8_t** p, size_t* len) {
  if (count() == 0 || tail_fill_ == kBlockSize) {
    if (count() == 0) head_off_ = 0;
    blocks_.push_back(pool_->Take());
    tail_fill_ = 0;
  }
  *p = blocks_.back()->data + tail_fill_;
  *len = kBlockSize - tail_fill_;
}

size_t ByteQueue::WritableTailVec(iovec* iov, size_t max, size_t want) {
  uint8_t* p;
  size_t len;
  WritableTail(&p, &len);
  iov[0] = {p, len};
  size_t n = 1;
  for (size_t room = len; n < max && room < want; ++n, room += kBlockSize) {
    blocks_.push_back(pool_->Take());
    ++spare_;
    iov[n] = {blocks_.back()->data, kBlockSize};
  }
  return n;
}

void ByteQueue::CommitVec(size_t n) {
  size_ += n;
  size_t tail = blocks_.size() - 1 - spare_;  // the block WritableTail() gave
  size_t fill = tail_fill_ + n;
  for (; fill > kBlockSize; fill -= kBlockSize) ++tail;
  tail_fill_ = fill;
  while (blocks_.size() - 1 > tail) {
    pool_->Give(std::move(blocks_.back()));
    blocks_.pop_back();
  }
  spare_ = 0;
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
  if (count() == 0) {
    *p = nullptr;
    *len = 0;
    return;
  }
  size_t end = count() == 1 ? tail_fill_ : kBlockSize;
  *p = blocks_[first_]->data + head_off_;
  *len = end - head_off_;
}

void ByteQueue::Consume(size_t n) {
  size_ -= n;
  while (n > 0) {
    size_t end = count() == 1 ? tail_fill_ : kBlockSize;
    size_t k = std::min(n, end - head_off_);
    head_off_ += k;
    n -= k;
    if (head_off_ == end && count() > 1) {
      pool_->Give(std::move(blocks_[first_]));
      ++first_;
      head_off_ = 0;
    }
  }
  if (size_ == 0) {
    Clear();  // the pool is the cache
  } else if (first_ > 0 && first_ * 2 >= blocks_.size()) {
    blocks_.erase(blocks_.begin(), blocks_.begin() + static_cast<ptrdiff_t>(first_));  // keep the vector compact
    first_ = 0;
  }
}

void ByteQueue::Clear() {
  for (size_t i = first_; i < blocks_.size(); ++i) pool_->Give(std::move(blocks_[i]));
  blocks_.clear();
  first_ = head_off_ = tail_fill_ = size_ = 0;
}

}  // namespace zm::proxy
