#include "agent/proxy/retry_policy.h"

#include <algorithm>

namespace zm::proxy {

bool IsRetryable(const agent::HttpRetryPolicy& policy, TryOutcome outcome, int status) {
  if (policy.attempts == 0) return false;
  switch (outcome) {
    case TryOutcome::kConnectFailed:
    case TryOutcome::kTimeout:
      return true;
    case TryOutcome::kStatus:
      return std::find(policy.codes.begin(), policy.codes.end(), status) != policy.codes.end();
  }
  return false;
}

std::chrono::milliseconds RetryBackoff::Ceiling(uint32_t retry, std::chrono::milliseconds base) {
  if (base.count() <= 0) base = kDefaultBackoffBase;
  const int64_t cap = base.count() * kMaxBackoffFactor;
  int64_t c = base.count();
  for (uint32_t i = 1; i < retry && c < cap; ++i) c *= 2;
  return std::chrono::milliseconds(std::min(c, cap));
}

std::chrono::milliseconds RetryBackoff::Next(uint32_t retry, std::chrono::milliseconds base) {
  const int64_t ceiling = Ceiling(retry, base).count();
  std::uniform_int_distribution<int64_t> d(0, ceiling);
  return std::chrono::milliseconds(d(rng_));
}

bool RetryBudget::TryAcquire() {
  // Integer form of active_retries < max(min_concurrent, active_requests * percent / 100).
  const uint64_t allowed = std::max<uint64_t>(min_concurrent_, uint64_t{active_requests_} * percent_ / 100);
  if (active_retries_ >= allowed) {
    ++exhausted_;
    return false;
  }
  ++active_retries_;
  return true;
}

std::string ShadowHost(std::string_view host) {
  size_t port = std::string_view::npos;
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    size_t close = host.find(']');
    if (close != std::string_view::npos && close + 1 < host.size() && host[close + 1] == ':') port = close + 1;
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon) {
    port = colon;
  }
  if (port == std::string_view::npos) return std::string(host) + "-shadow";
  return std::string(host.substr(0, port)) + "-shadow" + std::string(host.substr(port));
}

}  // namespace zm::proxy
