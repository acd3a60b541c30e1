// The PolicySet in force. Config updates swap in a freshly compiled set; worker threads read whichever set is current
// when a connection arrives. A config whose policies do not compile leaves the previous set in force.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "agent/control/config_state.h"
#include "agent/policy/policy_set.h"
#include "agent/proxy/options.h"

namespace zm::agent::policy {

inline constexpr char kNoConfigPolicy[] = "no-configuration";

class PolicyHolder {
 public:
  PolicyHolder();

  // False (with *error) when `state` does not compile; the current set stays.
  bool Update(const control::ConfigState& state, std::string* error);
  std::shared_ptr<const PolicySet> Get() const;  // nullptr before the first successful Update

  // Decides with the current set; before any config everything is denied ("no configuration yet").
  proxy::AuthzDecision Evaluate(const proxy::AuthzRequest& req) const;

  // For ProxyOptions::authorize. The callable shares the holder's slot, so it stays valid even if the proxy outlives
  // this holder.
  proxy::Authorizer MakeAuthorizer() const;

 private:
  // A mutex-guarded shared_ptr copy: the critical section is one refcount increment. Authorizers share the Slot.
  struct Slot {
    mutable std::mutex mu;
    std::shared_ptr<const PolicySet> set;

    std::shared_ptr<const PolicySet> Load() const;
    proxy::AuthzDecision Evaluate(const proxy::AuthzRequest& req) const;
  };
  std::shared_ptr<Slot> slot_;
};

}  // namespace zm::agent::policy
