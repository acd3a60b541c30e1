// The pieces of HTTPRoute retries that do not touch sockets (issue 17, the L7 path's resilience): which outcome of a
// try may be retried, how long to wait before the next one (jittered exponential backoff), and the per-worker retry
// budget that keeps retries from amplifying an outage. Used by Http1Conn; protocol-neutral so the HTTP/2 path can
// share them.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "agent/state/http_route.h"

namespace zm::proxy {

// Bounds of what the proxy keeps of a request to send it again (a retry) or to copy it (a RequestMirror): the body as
// it went upstream, up to this size. A request whose body is larger is not retried and not mirrored (it still goes to
// its backend, streamed as usual): holding a large upload per request in flight would let a few clients pin memory.
constexpr size_t kMaxReplayBody = 64 * 1024;

// Why a try failed, as far as retrying is concerned.
enum class TryOutcome : uint8_t {
  kStatus,         // a response head arrived; retried when its status is one of the rule's codes
  kConnectFailed,  // the upstream stream failed or closed before any response byte (refused, unreachable, reset)
  kTimeout,        // timeouts.backendRequest expired before the response
};

// Whether |outcome| (with |status| for kStatus) is one the rule's retry policy retries. Connect failures, resets and
// per-try timeouts are always retryable when the rule has a retry policy; a status only when listed.
bool IsRetryable(const agent::HttpRetryPolicy& policy, TryOutcome outcome, int status);

// The wait before retry number |retry| (1 = the first retry): full jitter over an exponential ceiling,
// uniform in [0, min(base * 2^(retry-1), kMaxBackoffFactor * base)] as Envoy does. |base| 0: kDefaultBackoffBase.
class RetryBackoff {
 public:
  static constexpr std::chrono::milliseconds kDefaultBackoffBase{25};
  static constexpr uint32_t kMaxBackoffFactor = 10;

  explicit RetryBackoff(uint64_t seed = 0x7e7a5eed) : rng_(seed) {}
  std::chrono::milliseconds Next(uint32_t retry, std::chrono::milliseconds base);
  // The ceiling the delay of |retry| is drawn under (for tests and docs).
  static std::chrono::milliseconds Ceiling(uint32_t retry, std::chrono::milliseconds base);

 private:
  std::mt19937_64 rng_;
};

// Per worker (one thread, no locking): retries in flight may not exceed |percent|% of the requests in flight, with a
// floor of |min_concurrent| so a quiet worker can still retry (Envoy's retry_budget: 20 %, at least 3; Linkerd's
// budget is a ratio too). A request that is retrying holds one slot from its first retry until it ends; its later
// retries reuse that slot. Requests count from routing to their end, on every HTTP rule (cheap: two increments).
class RetryBudget {
 public:
  static constexpr uint32_t kDefaultPercent = 20;
  static constexpr uint32_t kDefaultMinConcurrent = 3;

  explicit RetryBudget(uint32_t percent = kDefaultPercent, uint32_t min_concurrent = kDefaultMinConcurrent)
      : percent_(percent), min_concurrent_(min_concurrent) {}

  void RequestStarted() { ++active_requests_; }
  void RequestEnded() {
    if (active_requests_ > 0) --active_requests_;
  }
  // True (and the slot taken) when one more request may start retrying now.
  bool TryAcquire();
  void Release() {
    if (active_retries_ > 0) --active_retries_;
  }

  uint32_t active_requests() const { return active_requests_; }
  uint32_t active_retries() const { return active_retries_; }
  uint64_t exhausted() const { return exhausted_; }  // retries refused so far

 private:
  uint32_t percent_;
  uint32_t min_concurrent_;
  uint32_t active_requests_ = 0;
  uint32_t active_retries_ = 0;
  uint64_t exhausted_ = 0;
};

// What the HTTP paths of one worker share for retries and mirrors (WorkerContext::http; worker thread only).
struct HttpWorkerState {
  RetryBudget retry_budget;
  RetryBackoff backoff;
  std::minstd_rand rng{0x3117};    // RequestMirror sampling
  uint32_t mirrors_in_flight = 0;  // HttpMirror streams open
};

// Whether this request is one of the |percent| % a RequestMirror copies; |draw| is uniform over 32 bits.
inline bool MirrorSampled(uint32_t percent, uint32_t draw) {
  return percent >= 100 || (percent > 0 && draw % 100 < percent);
}

// The Host a mirrored copy carries: "-shadow" appended to the host name, before any port ("web:80" ->
// "web-shadow:80"), as Envoy and Istio mark shadowed requests.
std::string ShadowHost(std::string_view host);

}  // namespace zm::proxy
