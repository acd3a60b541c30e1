// Exponential backoff with jitter: quick first retries, capped.
#pragma once

#include <chrono>
#include <random>

namespace zm::agent::control {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
      : initial_(initial), max_(max), next_(initial) {}
  // The delay to wait now; doubles the next one (up to max). Jitter: 80..100% of the nominal value.
  std::chrono::milliseconds Next() {
    auto d = next_;
    next_ = std::min(max_, next_ * 2);
    std::uniform_int_distribution<int> pct(80, 100);
    return std::chrono::milliseconds(d.count() * pct(rng_) / 100);
  }
  void Reset() { next_ = initial_; }

 private:
  std::chrono::milliseconds initial_, max_, next_;
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace zm::agent::control
