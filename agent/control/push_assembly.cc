#include "agent/control/push_assembly.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;

PushAssembly::Step PushAssembly::Add(v1::ConfigPush part, v1::ConfigPush* whole, std::string* error) {
  if (!open_) {
    if (!part.more()) {
      *whole = std::move(part);
      return Step::kDone;
    }
    open_ = true;
    bytes_ = part.ByteSizeLong();
    acc_ = std::move(part);
    return Step::kMore;
  }
  if (part.version() != acc_.version() || part.epoch() != acc_.epoch() || part.full() != acc_.full() ||
      part.base_version() != acc_.base_version()) {
    *error = "a part of push " + part.epoch() + "/" + std::to_string(part.version()) + " arrived while assembling " +
             acc_.epoch() + "/" + std::to_string(acc_.version());
    open_ = false;
    acc_.Clear();
    return Step::kBad;
  }
  bytes_ += part.ByteSizeLong();
  if (bytes_ > kMaxBytes) {
    *error = "push " + acc_.epoch() + "/" + std::to_string(acc_.version()) + " exceeds " +
             std::to_string(kMaxBytes >> 20) + " MiB in parts";
    open_ = false;
    acc_.Clear();
    return Step::kBad;
  }
  for (auto& k : *part.mutable_removed()) acc_.add_removed()->Swap(&k);
  for (auto& r : *part.mutable_upserted()) acc_.add_upserted()->Swap(&r);
  if (part.more()) return Step::kMore;
  open_ = false;
  acc_.set_more(false);
  *whole = std::move(acc_);
  acc_.Clear();
  return Step::kDone;
}

}  // namespace zm::agent::control
