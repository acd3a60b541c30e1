#include "agent/runtime/sandbox_watcher.h"

#include <chrono>
#include <tuple>

#include "common/log.h"

namespace zm::agent::runtime {
namespace {

using Key = std::tuple<std::string, std::string>;  // id, ip: what changes the agent's decisions

std::vector<Key> Keys(const std::vector<Sandbox>& s) {
  std::vector<Key> k;
  for (const auto& x : s) k.emplace_back(x.id, x.ip);
  std::sort(k.begin(), k.end());
  return k;
}

}  // namespace

SandboxWatcher::SandboxWatcher(std::string socket, Callback on_update)
    : socket_(std::move(socket)), on_update_(std::move(on_update)), client_(socket_) {}

SandboxWatcher::~SandboxWatcher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SandboxWatcher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void SandboxWatcher::Kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

uint64_t SandboxWatcher::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

void SandboxWatcher::Run() {
  // After a kick: at once, then every 50 ms for 10 s. The sandbox is listed only once RunPodSandbox has finished
  // (CNI, then the pause container), which takes from milliseconds to seconds on a loaded node; the pod's first
  // container starts after that, so polling until then wins the race whatever the node's speed.
  constexpr auto kFast = std::chrono::milliseconds(50);
  constexpr auto kFastFor = std::chrono::seconds(10);
  constexpr auto kSlow = std::chrono::seconds(2);
  std::vector<Key> last;
  bool first = true;
  auto last_warn = std::chrono::steady_clock::time_point{};
  auto fast_until = std::chrono::steady_clock::time_point{};
  for (;;) {
    {
      std::unique_lock lock(mu_);
      auto wait = std::chrono::steady_clock::now() < fast_until
                      ? std::chrono::duration_cast<std::chrono::milliseconds>(kFast)
                      : std::chrono::duration_cast<std::chrono::milliseconds>(kSlow);
      cv_.wait_for(lock, wait, [&] { return stop_ || kicked_; });
      if (stop_) return;
      if (kicked_) {
        kicked_ = false;
        fast_until = std::chrono::steady_clock::now() + kFastFor;
      }
    }
    std::vector<Sandbox> sandboxes;
    std::string error;
    if (!client_.ListReady(&sandboxes, &error)) {
      std::lock_guard lock(mu_);
      ++errors_;
      if (auto now = std::chrono::steady_clock::now(); now - last_warn > std::chrono::minutes(1)) {
        last_warn = now;
        log::Warn("container runtime unreachable: new pods are held until the controller knows them",
                  {{"socket", socket_}, {"error", error}});
      }
      continue;
    }
    auto keys = Keys(sandboxes);
    if (first || keys != last) {
      first = false;
      last = std::move(keys);
      on_update_(sandboxes);
    }
  }
}

}  // namespace zm::agent::runtime
