#include "agent/policy/policy_holder.h"

#include <utility>

namespace zm::agent::policy {

std::shared_ptr<const PolicySet> PolicyHolder::Slot::Load() const {
  std::lock_guard<std::mutex> lock(mu);
  return set;
}

proxy::AuthzDecision PolicyHolder::Slot::Evaluate(const proxy::AuthzRequest& req) const {
  std::shared_ptr<const PolicySet> current = Load();
  if (current == nullptr) return {.allow = false, .reason = "no configuration yet", .policy = kNoConfigPolicy};
  return current->Evaluate(req);
}

PolicyHolder::PolicyHolder() : slot_(std::make_shared<Slot>()) {}

bool PolicyHolder::Update(const control::ConfigState& state, std::string* error) {
  std::shared_ptr<const PolicySet> next = PolicySet::Compile(state, error);
  if (next == nullptr) return false;
  std::shared_ptr<const PolicySet> old;
  {
    std::lock_guard<std::mutex> lock(slot_->mu);
    old = std::exchange(slot_->set, std::move(next));
  }
  // `old` is released here, outside the lock, so readers never wait for a set's destruction.
  return true;
}

std::shared_ptr<const PolicySet> PolicyHolder::Get() const {
  return slot_->Load();
}

proxy::AuthzDecision PolicyHolder::Evaluate(const proxy::AuthzRequest& req) const {
  return slot_->Evaluate(req);
}

proxy::Authorizer PolicyHolder::MakeAuthorizer() const {
  return [slot = slot_](const proxy::AuthzRequest& req) { return slot->Evaluate(req); };
}

}  // namespace zm::agent::policy
