// Pushes are the same for every agent at the same base version (each agent receives the whole mesh), so each one is
// built once and shared: with 100 agents, building a delta per agent costs 100x the CPU on every change.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "controller/config/push_parts.h"
#include "controller/config/snapshot.h"
#include "zeromesh/v1/config.pb.h"

namespace zm::ctrl {

class PushCache {
 public:
  using Parts = std::vector<std::string>;  // each an encoded ConfigPush (push_parts.h: EncodeParts)
  explicit PushCache(size_t part_bytes = kPushPartBytes) : part_bytes_(part_bytes) {}

  // The push taking an agent from `base` (nullptr: nothing held, a full push) to `to`, in parts of at most
  // `part_bytes` (SplitPush), encoded. Thread-safe; concurrent callers for the same pair wait for one build instead of
  // building it each.
  std::shared_ptr<const Parts> Get(const Snapshot* base, const Snapshot& to, const std::string& epoch,
                                   const std::string& bundle);

 private:
  using Key = std::pair<uint64_t, uint64_t>;  // {base version (0 = full), target version}
  struct Entry {
    std::once_flag built;
    std::shared_ptr<const Parts> parts;
  };
  static constexpr size_t kMaxEntries = 16;  // the newest target versions are what streams ask for

  const size_t part_bytes_;
  std::mutex mu_;
  std::string epoch_;
  std::map<Key, std::shared_ptr<Entry>> entries_;
};

}  // namespace zm::ctrl
