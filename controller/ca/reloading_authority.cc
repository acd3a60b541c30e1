#include "controller/ca/reloading_authority.h"

#include "common/log.h"

namespace zm::ca {

std::unique_ptr<ReloadingAuthority> ReloadingAuthority::Create(Loader loader, std::string* error) {
  std::unique_ptr<Authority> first = loader(error);
  if (!first) return nullptr;
  std::unique_ptr<ReloadingAuthority> r(new ReloadingAuthority());
  r->loader_ = std::move(loader);
  r->current_ = std::move(first);
  return r;
}

ReloadingAuthority::~ReloadingAuthority() {
  Stop();
}

std::shared_ptr<const Authority> ReloadingAuthority::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

std::string ReloadingAuthority::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

bool ReloadingAuthority::Reload() {
  std::string error;
  std::shared_ptr<const Authority> next = loader_(&error);
  std::shared_ptr<const Authority> now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!next) {
      if (error != last_error_) log::Error("CA reload failed; the current CA stays in force", {{"error", error}});
      last_error_ = error;
      return false;
    }
    last_error_.clear();
    if (current_->SameAs(*next)) return false;
    log::Info("mesh CA changed", {{"signer", next->signer().subject},
                                  {"signer_id", next->signer_id()},
                                  {"roots", next->roots().size()},
                                  {"signer_changed", next->signer_id() != current_->signer_id()}});
    current_ = next;
    now = current_;
  }
  if (on_change_) on_change_(now);
  return true;
}

void ReloadingAuthority::Watch(std::chrono::milliseconds interval, ChangeFn on_change, std::function<void()> on_poll) {
  on_change_ = std::move(on_change);
  on_poll_ = std::move(on_poll);
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, interval);
      if (stop_) break;
      lock.unlock();
      Reload();
      if (on_poll_) on_poll_();
      lock.lock();
    }
  });
}

void ReloadingAuthority::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace zm::ca
