// Bounds how many agents receive a full snapshot at once (istiod's PILOT_PUSH_THROTTLE). With 100,000 workloads a
// snapshot is ~13 MB; 1,000 agents joining together would have 13 GB in flight through TLS, every stream's
// serialized part buffered in the controller, and the handshakes and keepalives of everyone starved. An agent whose
// first snapshot waits here is served a little later; deltas to synced agents never take a slot.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace zm::ctrl {

class FullPushGate {
 public:
  explicit FullPushGate(size_t limit) : limit_(limit) {}  // 0: no bound

  // A held slot; released when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : gate_(o.gate_) { o.gate_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }
    bool held() const { return gate_ != nullptr; }
    void Release();

   private:
    friend class FullPushGate;
    explicit Slot(FullPushGate* g) : gate_(g) {}
    FullPushGate* gate_ = nullptr;
  };

  // Waits up to `wait` for a slot; an empty Slot when none freed in time (the caller re-checks its stream, then asks
  // again). No arrival order: a freed slot goes to whichever waiter wakes first.
  Slot Acquire(std::chrono::milliseconds wait);

  size_t limit() const { return limit_; }
  size_t sending() const;  // slots held
  size_t waiting() const;  // callers inside Acquire

 private:
  void ReleaseOne();

  const size_t limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t held_ = 0;
  size_t waiting_ = 0;
};

}  // namespace zm::ctrl
