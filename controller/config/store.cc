#include "controller/config/store.h"

namespace zm::ctrl {

bool ConfigStore::Publish(std::shared_ptr<Snapshot> next) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!snapshots_.empty() && snapshots_.back()->SameResources(*next) &&
        snapshots_.back()->trust_bundle_pem == next->trust_bundle_pem &&
        snapshots_.back()->ca_signer == next->ca_signer) {
      return false;
    }
    next->version = snapshots_.empty() ? 1 : snapshots_.back()->version + 1;
    retained_ += next->resources.size();
    snapshots_.push_back(std::move(next));
    // The current version and the one before it always stay (a delta for agents one change behind).
    while (snapshots_.size() > history_ || (snapshots_.size() > 2 && retained_ > max_retained_)) {
      retained_ -= snapshots_.front()->resources.size();
      snapshots_.pop_front();
    }
  }
  Notify();
  return true;
}

void ConfigStore::SetErrors(std::vector<manifest::Error> errors) {
  std::lock_guard<std::mutex> lock(mu_);
  errors_ = std::move(errors);
}

std::vector<manifest::Error> ConfigStore::errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

std::shared_ptr<const Snapshot> ConfigStore::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshots_.empty() ? nullptr : snapshots_.back();
}

std::shared_ptr<const Snapshot> ConfigStore::AtVersion(uint64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : snapshots_) {
    if (s->version == version) return s;
  }
  return nullptr;
}

void ConfigStore::Stop() {
  Notify();
}

uint64_t ConfigStore::Subscribe(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_[next_listener_] = std::move(fn);
  return next_listener_++;
}

void ConfigStore::Unsubscribe(uint64_t id) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.erase(id);
}

void ConfigStore::Notify() {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  for (auto& [id, fn] : listeners_) fn();
}

}  // namespace zm::ctrl
