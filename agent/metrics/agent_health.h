// Agent health and data-path counters as metric families, built at scrape time from a snapshot of the agent's state
// (agent/node fills AgentHealth; this file only names and shapes the metrics).
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "agent/bpf/bpf_manager.h"
#include "agent/proxy/options.h"

namespace zm::metrics {

struct AgentHealth {
  bool ready = false;
  uint64_t uplink_programs = 0;       // tcx links on the uplink (0 or 1)
  uint64_t pod_veth_programs = 0;     // tcx links on pod veths
  uint64_t local_pods = 0;            // pods of this node in the applied config
  uint64_t listeners_in_sockmap = 0;  // of listeners_expected
  uint64_t listeners_expected = 3;    // 3 per address family the node captures (6 with IPv6)
  uint64_t config_version = 0;
  std::optional<double> soonest_cert_expiry_seconds;  // absent: no local certificate
  std::optional<bool> controller_connected;           // absent: local-config mode
  std::optional<agent::bpf::CaptureStats> capture;    // absent: BPF maps unreadable
  const proxy::ProxyStats* proxy = nullptr;
};

std::vector<prometheus::MetricFamily> HealthFamilies(const AgentHealth& h);

}  // namespace zm::metrics
