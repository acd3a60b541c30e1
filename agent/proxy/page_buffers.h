// A worker's large transient buffers: the HBONE TLS read-ahead and write batch (tls_socket_bio.cc) and the decrypt
// scratch (HboneSession::ReadTls), 256 KiB each. They are mapped with mmap(2) rather than malloc'd so that their pages
// can be given back: a bulk transfer fills them all, and a freed 256 KiB block stays resident in glibc's per-thread
// arena (it sits below the arena's trim threshold), so an agent kept the high-water mark of its last burst — about
// 1.3 MB with two workers — for as long as it lived. Trim() (the worker's 1 s timer) returns the pages the last period
// did not need with MADV_DONTNEED; a steady bulk flow keeps its working set, and a buffer whose pages were returned
// reads as zeros the next time (nobody relies on its contents across uses).
//
// Single-threaded: one per worker, used on its loop only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zm::proxy {

class PageBuffers;

// One loan of a buffer (PageBuffers::Take); empty when default-constructed, moved from, or out of memory.
class PageBuffer {
 public:
  PageBuffer() = default;
  PageBuffer(PageBuffer&& o) noexcept { *this = static_cast<PageBuffer&&>(o); }
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer();  // gives it back to its pool

  uint8_t* data() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  // The first |n| bytes were written: their pages are resident now.
  void Filled(size_t n) {
    if (n > dirty_) dirty_ = n;
    if (n > used_) used_ = n;
  }

 private:
  friend class PageBuffers;
  PageBuffers* pool_ = nullptr;
  uint8_t* p_ = nullptr;
  size_t dirty_ = 0;  // bytes that may be resident (written since the pages were last returned)
  size_t used_ = 0;   // the most written during this loan
};

class PageBuffers {
 public:
  static constexpr size_t kSize = 256 * 1024;

  // |max_cached|: free buffers kept mapped at most; Trim() unmaps the ones a period did not need, except |keep|.
  explicit PageBuffers(size_t max_cached = 8, size_t keep = 1) : max_cached_(max_cached), keep_(keep) {}
  ~PageBuffers();
  PageBuffers(const PageBuffers&) = delete;
  PageBuffers& operator=(const PageBuffers&) = delete;

  PageBuffer Take();  // empty when mmap fails

  // The scratch: one buffer the worker uses synchronously (within one event) and never gives back; the caller reports
  // how far it wrote with ScratchFilled. nullptr when out of memory.
  uint8_t* scratch();
  void ScratchFilled(size_t n);

  // Unmaps the free buffers no Take() needed since the previous Trim() (beyond |keep|) and returns the pages beyond
  // what any use in that period wrote (at least a TLS record's worth, rounded up to a page) of the ones kept and of
  // the scratch. Returns the bytes given back.
  size_t Trim();

  size_t cached() const { return free_.size(); }
  size_t resident_bound() const;  // bytes of the free buffers and the scratch that may be resident (tests)

 private:
  friend class PageBuffer;
  struct Free {
    uint8_t* p;
    size_t dirty;
  };
  void Give(PageBuffer& b);

  size_t max_cached_;
  size_t keep_;
  std::vector<Free> free_;
  size_t low_ = 0;          // fewest free buffers since the last Trim()
  size_t period_need_ = 0;  // the most any use wrote since the last Trim()
  uint8_t* scratch_ = nullptr;
  size_t scratch_dirty_ = 0;
};

}  // namespace zm::proxy
