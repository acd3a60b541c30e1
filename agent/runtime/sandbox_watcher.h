// Keeps the agent's view of the node's pod sandboxes current: polls the runtime every 2 s, and after Kick() (a new
// pod veth appeared) at once and then every 50 ms for 10 s, so a new pod is known before its first container runs.
// Calls on_update(sandboxes) from its own thread after every successful poll whose result changed.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/runtime/cri_client.h"

namespace zm::agent::runtime {

class SandboxWatcher {
 public:
  using Callback = std::function<void(const std::vector<Sandbox>&)>;
  SandboxWatcher(std::string socket, Callback on_update);
  ~SandboxWatcher();  // stops the thread

  void Start();
  void Kick();              // a new pod network interface: poll fast for a while
  uint64_t errors() const;  // failed polls (runtime unreachable)
  std::string socket() const { return socket_; }

 private:
  void Run();

  std::string socket_;
  Callback on_update_;
  CriClient client_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool kicked_ = false;
  uint64_t errors_ = 0;
};

}  // namespace zm::agent::runtime
