// The BPF programs count into BPF_MAP_TYPE_PERCPU_ARRAY maps of u64, one key per counter; reading a counter means
// summing its key over every possible CPU. One reader for the capture, guard and sockmap statistics.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "agent/bpf/status.h"

namespace zm::agent::bpf {

// sums[i] = key i of |map_fd| summed over the CPUs, for every i < sums.size(); |map_name| names the map in an error.
Status SumPerCpuCounters(int map_fd, std::string_view map_name, std::span<uint64_t> sums);

}  // namespace zm::agent::bpf
