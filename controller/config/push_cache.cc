#include "controller/config/push_cache.h"

namespace zm::ctrl {

std::shared_ptr<const PushCache::Parts> PushCache::Get(const Snapshot* base, const Snapshot& to,
                                                       const std::string& epoch, const std::string& bundle) {
  Key key{base ? base->version : 0, to.version};
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (epoch != epoch_) {  // versions restart with a new epoch: nothing cached is valid
      entries_.clear();
      epoch_ = epoch;
    }
    auto& slot = entries_[key];
    if (!slot) slot = std::make_shared<Entry>();
    entry = slot;
    // Evict the entries with the oldest target versions.
    while (entries_.size() > kMaxEntries) {
      auto oldest = entries_.begin();
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->first.second < oldest->first.second) oldest = it;
      }
      if (oldest->second == entry) break;
      entries_.erase(oldest);
    }
  }
  std::call_once(entry->built, [&] {
    entry->parts = std::make_shared<const Parts>(
        base ? EncodeParts(SplitPush(MakeDeltaPush(*base, to, epoch, bundle), part_bytes_))
             : EncodeFullPush(to, epoch, bundle, part_bytes_));
  });
  return entry->parts;
}

}  // namespace zm::ctrl
