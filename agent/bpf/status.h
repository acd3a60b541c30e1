// Result of a BPF-manager / netlink operation: ok, or a message saying what failed and why.
// Nothing in agent/bpf throws; every failure comes back as a Status.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace zm::agent::bpf {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return {}; }
  static Status Error(std::string message);
  // "<what>: <strerror(err)>"; err is a positive or negative errno value.
  static Status Errno(std::string_view what, int err);

  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }
  int error_code() const { return code_; }  // errno for Errno(), else 0

 private:
  std::string message_;
  int code_ = 0;
};

}  // namespace zm::agent::bpf
