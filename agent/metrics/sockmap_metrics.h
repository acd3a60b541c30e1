// Prometheus families of the node-local sk_msg redirection (agent/bpf/sockmap.h).
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

#include "agent/bpf/sockmap.h"

namespace zm::metrics {

// requested: --sockmap is not off (zeromesh_sockmap_requested); on: and its programs are loaded
// (zeromesh_sockmap_enabled). Requested but not on: --sockops-cgroup auto found no pod cgroup (the log says why).
std::vector<prometheus::MetricFamily> SockmapFamilies(bool requested, bool on, const agent::bpf::SockmapStats& s,
                                                      uint64_t proxy_add_errors);

}  // namespace zm::metrics
