// What a relay (SpliceRelay, outbound HBONE stream) carries for a connection routed to a Service endpoint: the
// balancer lease (live connection count, connect outcome for outlier detection), the service's connect timeout, and
// the retry hook that takes the untouched downstream socket back when the connect fails.
#pragma once

#include <chrono>
#include <functional>

#include "agent/traffic/balancer.h"

namespace zm::proxy {

constexpr int kIdleChecks = 4;  // idle-timeout checks per interval

struct ServiceConn {
  traffic::Lease lease;
  std::chrono::milliseconds connect_timeout{0};  // 0: ProxyOptions::connect_timeout
  // 0: none. Checked in quarters: a connection without a byte either way for [T, 1.25 T] is reset.
  std::chrono::milliseconds idle_timeout{0};
  // Set while a retry is allowed. Called (posted to the worker loop) with the downstream fd when the connect was
  // refused or timed out and no byte was relayed yet; the relay no longer owns the fd then.
  std::function<void(int downstream)> retry;
};

}  // namespace zm::proxy
