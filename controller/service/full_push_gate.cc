#include "controller/service/full_push_gate.h"

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
