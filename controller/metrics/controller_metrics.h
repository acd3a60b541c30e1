// The controller's Prometheus metrics. Counters and the push-latency histogram are updated by the services as things
// happen; gauges that mirror state (connected agents, config version, manifest errors) are read at scrape time from
// collectors the Controller adds.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/metrics/metrics_hub.h"

namespace zm::ctrl {

// Why a CSR was refused. A fixed set, so the reason label cannot grow without bound.
enum class CsrDenial {
  kUnauthenticated,    // no or unknown join token
  kNoConfig,           // no valid mesh configuration yet
  kInvalidCsr,         // unparsable CSR, bad key or SAN
  kForeignIdentity,    // SAN outside the trust domain or not a workload identity
  kBadTtl,             // requested TTL out of bounds
  kNodeNotAuthorized,  // the identity exists but no such workload runs on the caller's node
  kUnknownIdentity,    // no workload in the mesh uses that service account
  kCaError,            // the CA failed to sign
};
inline constexpr size_t kCsrDenialCount = 8;
const char* CsrDenialLabel(CsrDenial reason);

class ControllerMetrics {
 public:
  using Clock = std::chrono::steady_clock;
  ControllerMetrics();

  void CsrSigned();
  void CsrDenied(CsrDenial reason);
  void ManifestRejected();                         // a manifest load attempt that kept the last good config
  void WatchRestarted(const std::string& source);  // a config-source watch had to be re-established
  void Published(uint64_t version);                // remembers when a version became current (for the push latency)
  std::optional<Clock::time_point> PublishedAt(uint64_t version) const;
  void PushSent();
  void PushAcked(double seconds);  // publish (or stream start, if later) -> ACK
  void PushNacked();
  // TokenReviews sent to the API server, by verdict ("accepted", "rejected", "error"), and reviews not sent because
  // the caller's address was over its rate ("rate_limited") or no slot freed in time ("busy").
  void TokenReviewed(const char* result);
  void TokenReviewThrottled(const char* reason);

  void AddCollector(std::shared_ptr<prometheus::Collectable> c) { hub_.Add(std::move(c)); }
  std::string Render() const { return hub_.Render(); }

 private:
  metrics::MetricsHub hub_;
  prometheus::Counter* signed_ = nullptr;
  std::array<prometheus::Counter*, kCsrDenialCount> denied_{};
  prometheus::Counter* manifest_rejections_ = nullptr;
  prometheus::Family<prometheus::Counter>* watch_restarts_ = nullptr;
  prometheus::Counter* pushes_ = nullptr;
  prometheus::Counter* nacks_ = nullptr;
  prometheus::Histogram* push_latency_ = nullptr;
  prometheus::Family<prometheus::Counter>* token_reviews_ = nullptr;
  prometheus::Family<prometheus::Counter>* token_review_throttled_ = nullptr;

  mutable std::mutex mu_;
  std::map<uint64_t, Clock::time_point> published_;  // the last few versions only
};

}  // namespace zm::ctrl
