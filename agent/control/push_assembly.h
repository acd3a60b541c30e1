// Assembles a push the controller sent in parts (ConfigPush.more: a full snapshot of a large mesh exceeds gRPC's
// 4 MiB message limit). Parts of one push share version, epoch, full and base version; anything else is a broken
// stream, answered like an unusable delta (NACK, resync with a full snapshot).
#pragma once

#include <cstddef>
#include <string>

#include "zeromesh/v1/config.pb.h"

namespace zm::agent::control {

class PushAssembly {
 public:
  enum class Step { kMore, kDone, kBad };
  static constexpr size_t kMaxBytes = size_t{1} << 30;  // an assembled push larger than this is refused

  // kDone: *whole is the push (a push in one part passes straight through). kMore: wait for the next part.
  // kBad: *error says why; the parts so far are dropped.
  Step Add(zeromesh::v1::ConfigPush part, zeromesh::v1::ConfigPush* whole, std::string* error);

 private:
  bool open_ = false;
  zeromesh::v1::ConfigPush acc_;
  size_t bytes_ = 0;
};

}  // namespace zm::agent::control
