#include "agent/bpf/status.h"

#include <cstdlib>
#include <cstring>

namespace zm::agent::bpf {

Status Status::Error(std::string message) {
  Status s;
  s.message_ = message.empty() ? std::string("unknown error") : std::move(message);
  return s;
}

Status Status::Errno(std::string_view what, int err) {
  err = std::abs(err);
  Status s = Error(std::string(what) + ": " + std::strerror(err));
  s.code_ = err;
  return s;
}

}  // namespace zm::agent::bpf
