// Bounds how many agents receive a full snapshot at once (istiod's PILOT_PUSH_THROTTLE). With 100,000 workloads a
// snapshot is ~13 MB; 1,000 agents joining together would have 13 GB in flight through TLS, every stream's
// serialized part buffered in the controller, and the handshakes and keepalives of everyone starved. An agent whose
// first snapshot waits here is served a little later; deltas to synced agents never take a slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
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
  using Waiter = std::function<void(Slot)>;

  // A slot now if one is free; otherwise an empty Slot, and `on_slot` is queued and called (first come, first served)
  // with the slot when one is released, on the releasing thread and with no lock of the gate held. *id names the
  // queued waiter for Cancel. A stream waiting for its snapshot holds no thread this way.
  Slot AcquireOrQueue(Waiter on_slot, uint64_t* id);
  // Takes a queued waiter out; false if it was already called (or is being called) with a slot.
  bool Cancel(uint64_t id);

  size_t limit() const { return limit_; }
  size_t sending() const;  // slots held
  size_t waiting() const;  // queued waiters

 private:
  void ReleaseOne();

  const size_t limit_;
  mutable std::mutex mu_;
  size_t held_ = 0;
  struct Queued {
    uint64_t id;
    Waiter on_slot;
  };
  std::deque<Queued> queue_;
  uint64_t next_id_ = 1;
};

}  // namespace zm::ctrl
