// Prometheus families of the node-local sk_msg redirection (agent/bpf/sockmap.h).
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

#include "agent/bpf/sockmap.h"

namespace zm::metrics {

// on: the agent runs with --sockmap other than off and its programs are loaded (zeromesh_sockmap_enabled).
std::vector<prometheus::MetricFamily> SockmapFamilies(bool on, const agent::bpf::SockmapStats& s,
                                                      uint64_t proxy_add_errors);

}  // namespace zm::metrics
