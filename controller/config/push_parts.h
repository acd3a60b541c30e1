// A push in parts: gRPC refuses messages over 4 MiB by default, and a full snapshot of 100,000 workloads is about
// 13 MB. Parts stay below a byte budget and are assembled by the agent (ConfigPush.more, agent/control/push_assembly).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "zeromesh/v1/config.pb.h"

namespace zm::ctrl {

constexpr size_t kPushPartBytes = 1 << 20;

// Splits `push` into parts of at most `max_bytes` of resources each (a single larger resource gets a part of its
// own); every part but the last has more = true. A push within the budget comes back as one part.
std::vector<zeromesh::v1::ConfigPush> SplitPush(zeromesh::v1::ConfigPush push, size_t max_bytes = kPushPartBytes);

// The parts as one message again, for an agent that does not assemble parts.
zeromesh::v1::ConfigPush JoinParts(const std::vector<zeromesh::v1::ConfigPush>& parts);

// Pushes are kept and sent encoded: one encoding serves every stream (gRPC writes the bytes as they are), and 13 MB
// of bytes is about a ninth of the same parts decoded. EncodeParts encodes what SplitPush gave; EncodeFullPush encodes
// the full push of `s` part by part, as SplitPush(MakeFullPush(s)) would split it, without ever holding a decoded
// copy of the whole mesh (at 100,000 workloads that copy was ~115 MB at once). DecodeParts is the way back.
struct Snapshot;
std::vector<std::string> EncodeParts(const std::vector<zeromesh::v1::ConfigPush>& parts);
std::vector<std::string> EncodeFullPush(const Snapshot& s, const std::string& epoch, const std::string& bundle,
                                        size_t max_bytes = kPushPartBytes);
// False when a part is not a ConfigPush.
bool DecodeParts(const std::vector<std::string>& encoded, std::vector<zeromesh::v1::ConfigPush>* parts);

}  // namespace zm::ctrl
