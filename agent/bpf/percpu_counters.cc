#include "agent/bpf/percpu_counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <string>
#include <vector>

namespace zm::agent::bpf {

Status SumPerCpuCounters(int map_fd, std::string_view map_name, std::span<uint64_t> sums) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Status::Errno("libbpf_num_possible_cpus", ncpu);
  // A lookup of a per-CPU map fills one 8-byte slot per possible CPU.
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < sums.size(); ++i) {
    if (bpf_map_lookup_elem(map_fd, &i, per_cpu.data()) != 0) {
      return Status::Errno(std::string(map_name) + " lookup", errno);
    }
    sums[i] = 0;
    for (uint64_t v : per_cpu) sums[i] += v;
  }
  return Status::Ok();
}

}  // namespace zm::agent::bpf
