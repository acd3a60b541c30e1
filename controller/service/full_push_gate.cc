#include "controller/service/full_push_gate.h"

#include <condition_variable>
#include <memory>

namespace zm::ctrl {

FullPushGate::Slot& FullPushGate::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    Release();
    gate_ = o.gate_;
    o.gate_ = nullptr;
  }
  return *this;
}

void FullPushGate::Slot::Release() {
  if (gate_) gate_->ReleaseOne();
  gate_ = nullptr;
}

FullPushGate::Slot FullPushGate::AcquireOrQueue(Waiter on_slot, uint64_t* id) {
  std::lock_guard<std::mutex> lock(mu_);
  // A released slot goes straight to the first waiter, so a free one means nobody waits: no jumping the queue.
  if (limit_ == 0 || held_ < limit_) {
    held_++;
    return Slot(this);
  }
  *id = next_id_++;
  queue_.push_back({*id, std::move(on_slot)});
  return Slot();
}

bool FullPushGate::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->id == id) {
      queue_.erase(it);
      return true;
    }
  }
  return false;
}

FullPushGate::Slot FullPushGate::Acquire(std::chrono::milliseconds wait) {
  struct Handoff {
    std::mutex mu;
    std::condition_variable cv;
    Slot slot;
    bool got = false;
  };
  auto h = std::make_shared<Handoff>();
  uint64_t id = 0;
  Slot now = AcquireOrQueue(
      [h](Slot s) {
        std::lock_guard<std::mutex> lock(h->mu);
        h->slot = std::move(s);  // h->slot is empty: nothing is released under the lock
        h->got = true;
        h->cv.notify_one();
      },
      &id);
  if (now.held()) return now;
  std::unique_lock<std::mutex> lock(h->mu);
  if (h->cv.wait_for(lock, wait, [&] { return h->got; })) return std::move(h->slot);
  lock.unlock();
  if (Cancel(id)) return Slot();
  lock.lock();  // handed a slot while giving up: it is on its way
  h->cv.wait(lock, [&] { return h->got; });
  return std::move(h->slot);
}

void FullPushGate::ReleaseOne() {
  Waiter next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {
      held_--;
    } else {  // the slot passes to the first waiter: held_ stays
      next = std::move(queue_.front().on_slot);
      queue_.pop_front();
    }
  }
  if (next) next(Slot(this));
}

size_t FullPushGate::sending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_;
}

size_t FullPushGate::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace zm::ctrl
