// The mesh CA as the controller uses it: loaded from its source (a directory, files, or a Kubernetes Secret) and
// re-read while the controller runs, so a root can be added, the signer switched and the old root removed without a
// restart (the trust-bundle rotation in docs/design.md). A source that becomes unusable keeps the last good CA.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "controller/ca/authority.h"

namespace zm::ca {

class ReloadingAuthority {
 public:
  // Returns the CA as the source holds it now, or nullptr with *error.
  using Loader = std::function<std::unique_ptr<Authority>(std::string* error)>;
  using ChangeFn = std::function<void(const std::shared_ptr<const Authority>& now)>;

  // Loads once; nullptr with *error if the first load fails (the controller cannot start without a CA).
  static std::unique_ptr<ReloadingAuthority> Create(Loader loader, std::string* error);
  ~ReloadingAuthority();

  std::shared_ptr<const Authority> Current() const;
  // Polls the source every `interval` on a thread of its own; `on_change` runs there after each swap.
  // `on_poll` (optional) runs after every poll, e.g. to retry publishing what the last change could not.
  void Watch(std::chrono::milliseconds interval, ChangeFn on_change, std::function<void()> on_poll = nullptr);
  // Re-reads the source now. True if the CA changed. A failed load keeps the current CA (error logged once).
  bool Reload();
  // The last reload error ("" after a good load): shown by meshctl status.
  std::string last_error() const;
  void Stop();

 private:
  ReloadingAuthority() = default;

  Loader loader_;
  ChangeFn on_change_;
  std::function<void()> on_poll_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Authority> current_;
  std::string last_error_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zm::ca
