// Versioned holder of the last good configuration, with a short history so reconnecting agents get deltas.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "controller/config/snapshot.h"
#include "controller/manifest/manifest.h"

namespace zm::ctrl {

class ConfigStore {
 public:
  // Keeps up to `history` versions, and fewer when they would hold more than `max_retained` resources together: at
  // 100,000 workloads 64 full copies would be gigabytes. An agent whose version has left the history gets a full push.
  explicit ConfigStore(std::string epoch, size_t history = 64, size_t max_retained = 1'000'000)
      : epoch_(std::move(epoch)), history_(history), max_retained_(max_retained) {}

  // Makes `next` current with version+1 unless its resources equal the current ones. Returns true if published.
  bool Publish(std::shared_ptr<Snapshot> next);
  // Manifest errors of the latest load attempt (empty after a good load).
  void SetErrors(std::vector<manifest::Error> errors);
  std::vector<manifest::Error> errors() const;

  std::shared_ptr<const Snapshot> Current() const;  // nullptr until the first good config
  std::shared_ptr<const Snapshot> AtVersion(uint64_t version) const;
  void Stop();  // the controller is stopping: subscribers are told

  // Calls `fn` after each published version and on Stop(), on that caller's thread and outside the store's lock (so
  // it may call Current()): streams are kicked instead of a thread per stream waiting. `fn` must not (un)subscribe.
  uint64_t Subscribe(std::function<void()> fn);
  void Unsubscribe(uint64_t id);  // waits for a call in progress: `fn` is not called after it returns

  const std::string& epoch() const { return epoch_; }

 private:
  const std::string epoch_;
  const size_t history_;
  const size_t max_retained_;
  size_t retained_ = 0;  // resources of the snapshots held
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<const Snapshot>> snapshots_;  // oldest first; back() is current
  std::vector<manifest::Error> errors_;
  void Notify();
  std::mutex listeners_mu_;  // held while listeners are called
  std::map<uint64_t, std::function<void()>> listeners_;
  uint64_t next_listener_ = 1;
};

}  // namespace zm::ctrl
