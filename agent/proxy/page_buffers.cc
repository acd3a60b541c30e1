#include "agent/proxy/page_buffers.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace zm::proxy {
namespace {

// Pages Trim() leaves resident in each buffer it keeps, whatever the period needed: room for one full TLS record, so
// interactive traffic after a pause does not fault its first pages in again.
constexpr size_t kResidentFloor = 20 * 1024;

size_t PageSize() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t RoundUpToPage(size_t n) {
  size_t page = PageSize();
  return (n + page - 1) / page * page;
}

uint8_t* Map() {
  void* p = mmap(nullptr, PageBuffers::kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
}

// Gives back the pages of p[keep, dirty) (keep rounded up to a page); returns the new dirty bound and adds the bytes
// returned to *freed.
size_t Release(uint8_t* p, size_t dirty, size_t keep, size_t* freed) {
  keep = RoundUpToPage(keep);
  dirty = std::min(RoundUpToPage(dirty), PageBuffers::kSize);
  if (dirty <= keep) return dirty;
  if (madvise(p + keep, dirty - keep, MADV_DONTNEED) != 0) return dirty;
  *freed += dirty - keep;
  return keep;
}

}  // namespace

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
  if (this != &o) {
    if (p_ != nullptr) pool_->Give(*this);
    pool_ = o.pool_;
    p_ = o.p_;
    dirty_ = o.dirty_;
    used_ = o.used_;
    o.p_ = nullptr;
  }
  return *this;
}

PageBuffer::~PageBuffer() {
  if (p_ != nullptr) pool_->Give(*this);
}

PageBuffers::~PageBuffers() {
  for (const Free& f : free_) munmap(f.p, kSize);
  if (scratch_ != nullptr) munmap(scratch_, kSize);
}

PageBuffer PageBuffers::Take() {
  PageBuffer b;
  if (!free_.empty()) {
    b.p_ = free_.back().p;
    b.dirty_ = free_.back().dirty;
    free_.pop_back();
    low_ = std::min(low_, free_.size());
  } else {
    b.p_ = Map();
  }
  if (b.p_ != nullptr) b.pool_ = this;
  return b;
}

void PageBuffers::Give(PageBuffer& b) {
  period_need_ = std::max(period_need_, b.used_);
  if (free_.size() < max_cached_) {
    free_.push_back({b.p_, b.dirty_});
  } else {
    munmap(b.p_, kSize);
  }
  b.p_ = nullptr;
}

uint8_t* PageBuffers::scratch() {
  if (scratch_ == nullptr) scratch_ = Map();
  return scratch_;
}

void PageBuffers::ScratchFilled(size_t n) {
  scratch_dirty_ = std::max(scratch_dirty_, n);
  period_need_ = std::max(period_need_, n);
}

size_t PageBuffers::Trim() {
  size_t freed = 0;
  // The oldest first: the hot ones are at the back.
  size_t unneeded = std::min(low_, free_.size() > keep_ ? free_.size() - keep_ : 0);
  for (size_t i = 0; i < unneeded; ++i) munmap(free_[i].p, kSize);
  freed += unneeded * kSize;
  free_.erase(free_.begin(), free_.begin() + static_cast<ptrdiff_t>(unneeded));
  size_t need = std::max(period_need_, kResidentFloor);
  for (Free& f : free_) f.dirty = Release(f.p, f.dirty, need, &freed);
  if (scratch_ != nullptr) scratch_dirty_ = Release(scratch_, scratch_dirty_, need, &freed);
  low_ = free_.size();
  period_need_ = 0;
  return freed;
}

size_t PageBuffers::resident_bound() const {
  size_t n = scratch_ != nullptr ? RoundUpToPage(scratch_dirty_) : 0;
  for (const Free& f : free_) n += RoundUpToPage(f.dirty);
  return n;
}

}  // namespace zm::proxy
