// Inbound HBONE connections per TCP source address, counted across all workers (ProxyOptions::
// max_connections_per_peer): the identity is not known before TLS, the source address is.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "common/net/ip_addr.h"

namespace zm::proxy {

class PeerLimit {
 public:
  explicit PeerLimit(uint32_t max) : max_(max) {}

  // False when |ip| already has max connections (0: no limit).
  bool Acquire(const net::IpAddr& ip) {
    std::lock_guard<std::mutex> l(mu_);
    uint32_t& n = count_[ip];
    if (max_ != 0 && n >= max_) {
      if (n == 0) count_.erase(ip);
      return false;
    }
    ++n;
    return true;
  }
  void Release(const net::IpAddr& ip) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = count_.find(ip);
    if (it == count_.end()) return;
    if (--it->second == 0) count_.erase(it);
  }
  uint32_t count(const net::IpAddr& ip) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = count_.find(ip);
    return it == count_.end() ? 0 : it->second;
  }

 private:
  const uint32_t max_;
  mutable std::mutex mu_;
  std::unordered_map<net::IpAddr, uint32_t> count_;
};

// One acquired slot of a PeerLimit; released on Reset() or destruction.
class PeerSlot {
 public:
  PeerSlot() = default;
  PeerSlot(PeerLimit* limit, const net::IpAddr& ip) : limit_(limit), ip_(ip) {}
  PeerSlot(PeerSlot&& o) noexcept : limit_(std::exchange(o.limit_, nullptr)), ip_(o.ip_) {}
  PeerSlot& operator=(PeerSlot&& o) noexcept {
    if (this != &o) {
      Reset();
      limit_ = std::exchange(o.limit_, nullptr);
      ip_ = o.ip_;
    }
    return *this;
  }
  PeerSlot(const PeerSlot&) = delete;
  PeerSlot& operator=(const PeerSlot&) = delete;
  ~PeerSlot() { Reset(); }
  void Reset() {
    if (limit_ != nullptr) limit_->Release(ip_);
    limit_ = nullptr;
  }

 private:
  PeerLimit* limit_ = nullptr;
  net::IpAddr ip_;
};

}  // namespace zm::proxy
