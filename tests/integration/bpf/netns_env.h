// Test-only network namespace plumbing: namespaces this test creates (unique random prefix), entering them, and
// sockets created inside them. Every namespace is deleted by RAII and, as a last resort, at process exit.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace zm::agent::bpf::testing {

// "zmt" + 6 hex digits, registered with this process as owner: namespaces and pins named after the prefix of a
// process that died without cleaning up are removed by the next test process.
std::string RandomPrefix();
// Runs a shell command (setup only: "ip -n <ours> ..."); returns the exit status, logs failures to stderr.
int Sh(const std::string& cmd);
std::string ShOutput(const std::string& cmd);

// A named netns (/var/run/netns/<name>) created with `ip netns add`, deleted on destruction.
class Netns {
 public:
  static std::unique_ptr<Netns> Create(const std::string& name);  // nullptr on failure
  ~Netns();
  const std::string& name() const { return name_; }
  int fd() const { return fd_; }
  std::string Path() const { return "/var/run/netns/" + name_; }

 private:
  explicit Netns(std::string name, int fd) : name_(std::move(name)), fd_(fd) {}
  std::string name_;
  int fd_;
};

// Moves the calling thread into `ns` and back to its original netns on destruction.
class ScopedNetns {
 public:
  explicit ScopedNetns(const Netns& ns);
  ~ScopedNetns();
  bool ok() const { return ok_; }

 private:
  int orig_fd_ = -1;
  bool ok_ = false;
};

// Runs fn on a helper thread that has entered `ns` (sockets it creates belong to `ns`). Returns false on setns failure.
bool RunInNetns(const Netns& ns, const std::function<void()>& fn);

}  // namespace zm::agent::bpf::testing
