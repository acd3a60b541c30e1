#include "controller/metrics/controller_metrics.h"

namespace zm::ctrl {
namespace {

constexpr size_t kPublishedKept = 128;

}  // namespace

const char* CsrDenialLabel(CsrDenial reason) {
  switch (reason) {
    case CsrDenial::kUnauthenticated:
      return "unauthenticated";
    case CsrDenial::kNoConfig:
      return "no_config";
    case CsrDenial::kInvalidCsr:
      return "invalid_csr";
    case CsrDenial::kForeignIdentity:
      return "foreign_identity";
    case CsrDenial::kBadTtl:
      return "bad_ttl";
    case CsrDenial::kNodeNotAuthorized:
      return "node_not_authorized";
    case CsrDenial::kUnknownIdentity:
      return "unknown_identity";
    case CsrDenial::kCaError:
      return "ca_error";
  }
  return "unknown";
}

ControllerMetrics::ControllerMetrics() {
  auto& reg = hub_.registry();
  signed_ = &prometheus::BuildCounter()
                 .Name("zeromesh_csr_signed_total")
                 .Help("Workload certificates the CA signed.")
                 .Register(reg)
                 .Add({});
  auto& denied = prometheus::BuildCounter()
                     .Name("zeromesh_csr_denied_total")
                     .Help("CSRs the controller refused, by reason.")
                     .Register(reg);
  // Every reason exists from the start: a rate() over a series that appears late misses its first increment.
  for (size_t i = 0; i < kCsrDenialCount; i++) {
    denied_[i] = &denied.Add({{"reason", CsrDenialLabel(static_cast<CsrDenial>(i))}});
  }
  manifest_rejections_ = &prometheus::BuildCounter()
                              .Name("zeromesh_controller_manifest_rejections_total")
                              .Help("Manifest loads rejected (the last good configuration stayed in force).")
                              .Register(reg)
                              .Add({});
  watch_restarts_ = &prometheus::BuildCounter()
                         .Name("zeromesh_controller_watch_restarts_total")
                         .Help("Config-source watches that had to be re-established, by source.")
                         .Register(reg);
  watch_restarts_->Add({{"source", "manifests"}});  // exported at zero from the start, like the CSR reasons
  pushes_ = &prometheus::BuildCounter()
                 .Name("zeromesh_controller_config_pushes_total")
                 .Help("Configuration pushes written to agent streams.")
                 .Register(reg)
                 .Add({});
  nacks_ = &prometheus::BuildCounter()
                .Name("zeromesh_controller_config_nacks_total")
                .Help("Configuration pushes agents rejected.")
                .Register(reg)
                .Add({});
  push_latency_ = &prometheus::BuildHistogram()
                       .Name("zeromesh_controller_push_latency_seconds")
                       .Help("From a configuration version becoming current to an agent's ACK of it.")
                       .Register(reg)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                                        2.5, 5, 10, 30});
  token_reviews_ = &prometheus::BuildCounter()
                        .Name("zeromesh_token_reviews_total")
                        .Help("TokenReviews sent to the Kubernetes API server, by result.")
                        .Register(reg);
  for (const char* r : {"accepted", "rejected", "error"}) token_reviews_->Add({{"result", r}});
  token_review_throttled_ = &prometheus::BuildCounter()
                                 .Name("zeromesh_token_review_throttled_total")
                                 .Help("Agent tokens refused without a TokenReview, by reason.")
                                 .Register(reg);
  for (const char* r : {"rate_limited", "busy"}) token_review_throttled_->Add({{"reason", r}});
}

void ControllerMetrics::CsrSigned() {
  signed_->Increment();
}

void ControllerMetrics::CsrDenied(CsrDenial reason) {
  auto i = static_cast<size_t>(reason);
  if (i < kCsrDenialCount) denied_[i]->Increment();
}

void ControllerMetrics::ManifestRejected() {
  manifest_rejections_->Increment();
}

void ControllerMetrics::WatchRestarted(const std::string& source) {
  watch_restarts_->Add({{"source", source}}).Increment();
}

void ControllerMetrics::Published(uint64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  published_[version] = Clock::now();
  while (published_.size() > kPublishedKept) published_.erase(published_.begin());
}

std::optional<ControllerMetrics::Clock::time_point> ControllerMetrics::PublishedAt(uint64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = published_.find(version);
  if (it == published_.end()) return std::nullopt;
  return it->second;
}

void ControllerMetrics::PushSent() {
  pushes_->Increment();
}

void ControllerMetrics::PushAcked(double seconds) {
  push_latency_->Observe(seconds < 0 ? 0 : seconds);
}

void ControllerMetrics::PushNacked() {
  nacks_->Increment();
}

void ControllerMetrics::TokenReviewed(const char* result) {
  token_reviews_->Add({{"result", result}}).Increment();
}

void ControllerMetrics::TokenReviewThrottled(const char* reason) {
  token_review_throttled_->Add({{"reason", reason}}).Increment();
}

}  // namespace zm::ctrl
