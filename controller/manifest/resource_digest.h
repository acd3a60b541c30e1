// SHA-256 of a resource's deterministic protobuf encoding: equal digests, equal resources. Snapshots compare versions
// by it (controller/config/snapshot.h), and the decode cache computes it once per decoded workload, so a change of one
// file does not re-encode the other 100,000 workloads.
#pragma once

#include <array>
#include <cstdint>

#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

using Digest = std::array<uint8_t, 32>;

Digest ResourceDigest(const zeromesh::v1::Resource& r);

}  // namespace zm::manifest
