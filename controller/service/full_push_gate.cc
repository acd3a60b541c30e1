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

FullPushGate::Slot FullPushGate::Acquire(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  waiting_++;
  bool got = limit_ == 0 || cv_.wait_for(lock, wait, [this] { return held_ < limit_; });
  waiting_--;
  if (!got) return Slot();
  held_++;
  return Slot(this);
}

void FullPushGate::ReleaseOne() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_--;
  }
  cv_.notify_one();
}

size_t FullPushGate::sending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_;
}

size_t FullPushGate::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

}  // namespace zm::ctrl
