#include "agent/metrics/connection_metrics.h"

namespace zm::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildHistogram;

// Seconds: short RPC-style connections up to hour-long streams.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,  1,
                                                                  5,     10,    30,   60,   300, 1800, 3600};
constexpr proxy::TlsFailure kAllTlsFailures[] = {
    proxy::TlsFailure::kNoCertificate,    proxy::TlsFailure::kPeerVerification, proxy::TlsFailure::kProtocol,
    proxy::TlsFailure::kConnectionClosed, proxy::TlsFailure::kNoAlpnH2,         proxy::TlsFailure::kPeerIdentity,
    proxy::TlsFailure::kTimeout};

}  // namespace

ConnectionMetrics::ConnectionMetrics(prometheus::Registry& registry, size_t max_series)
    : max_series_(max_series),
      opened_(BuildCounter()
                  .Name("zeromesh_tcp_connections_opened_total")
                  .Help("TCP connections the node proxy started relaying, by source and destination workload.")
                  .Register(registry)),
      closed_(BuildCounter()
                  .Name("zeromesh_tcp_connections_closed_total")
                  .Help("TCP connections the node proxy finished relaying (cleanly or not).")
                  .Register(registry)),
      sent_(BuildCounter()
                .Name("zeromesh_tcp_sent_bytes_total")
                .Help("Bytes relayed from the source workload to the destination workload.")
                .Register(registry)),
      received_(BuildCounter()
                    .Name("zeromesh_tcp_received_bytes_total")
                    .Help("Bytes relayed from the destination workload back to the source workload.")
                    .Register(registry)),
      duration_(BuildHistogram()
                    .Name("zeromesh_tcp_connection_duration_seconds")
                    .Help("Lifetime of relayed TCP connections.")
                    .Register(registry)),
      denials_(BuildCounter()
                   .Name("zeromesh_policy_denials_total")
                   .Help("Connections refused by a policy; built-in rules are named builtin:*.")
                   .Register(registry)),
      tls_failures_(BuildCounter()
                        .Name("zeromesh_tls_handshake_failures_total")
                        .Help("HBONE TLS handshakes that failed, by reason.")
                        .Register(registry)),
      overflowed_(BuildCounter()
                      .Name("zeromesh_metrics_label_overflow_total")
                      .Help("Connections counted in the \"other\" series because the label-set cap was reached.")
                      .Register(registry)
                      .Add({})) {
  for (proxy::TlsFailure f : kAllTlsFailures) {
    tls_by_reason_[static_cast<size_t>(f)] = &tls_failures_.Add({{"reason", proxy::TlsFailureName(f)}});
  }
}

ConnectionMetrics::Series* ConnectionMetrics::Make(const ConnLabels& labels) {
  auto l = labels.ToPrometheus();
  return new Series{labels,        &opened_.Add(l),   &closed_.Add(l),
                    &sent_.Add(l), &received_.Add(l), &duration_.Add(l, kDurationBuckets)};
}

ConnectionMetrics::Series* ConnectionMetrics::Resolve(const ConnLabels& labels, proxy::Reporter reporter) {
  std::string key = labels.Key();
  if (auto it = by_key_.find(key); it != by_key_.end()) return it->second.get();
  if (by_key_.size() < max_series_) {
    Series* s = Make(labels);
    by_key_.emplace(std::move(key), std::unique_ptr<Series>(s));
    return s;
  }
  overflowed_.Increment();
  auto& o = overflow_[static_cast<int>(reporter)];
  if (!o) o.reset(Make(ConnLabels::Overflow(reporter)));
  return o.get();
}

void ConnectionMetrics::Open(proxy::ConnRecord& r) {
  {
    std::lock_guard l(mu_);
    r.sink[0] = Resolve(ConnLabels::From(r, r.reporter), r.reporter);
    if (r.same_node)
      r.sink[1] = Resolve(ConnLabels::From(r, proxy::Reporter::kDestination), proxy::Reporter::kDestination);
  }
  for (void* p : r.sink) {
    if (p) static_cast<Series*>(p)->opened->Increment();
  }
}

void ConnectionMetrics::FlushBytes(proxy::ConnRecord& r) {
  double sent = static_cast<double>(r.sent - r.reported_sent);
  double received = static_cast<double>(r.received - r.reported_received);
  r.reported_sent = r.sent;
  r.reported_received = r.received;
  for (void* p : r.sink) {
    if (!p) continue;
    auto* s = static_cast<Series*>(p);
    if (sent > 0) s->sent->Increment(sent);
    if (received > 0) s->received->Increment(received);
  }
}

void ConnectionMetrics::Progress(proxy::ConnRecord& r) {
  FlushBytes(r);
}

void ConnectionMetrics::Close(proxy::ConnRecord& r) {
  if (r.decision == proxy::Decision::kDeny) {
    std::string policy = r.policy.empty() ? kUnknown : r.policy;
    prometheus::Counter* c;
    {
      std::lock_guard l(mu_);
      auto it = denials_by_policy_.find(policy);
      if (it == denials_by_policy_.end()) {
        if (denials_by_policy_.size() >= kMaxPolicies) policy = kOther;
        it = denials_by_policy_.find(policy);
        if (it == denials_by_policy_.end()) {
          it = denials_by_policy_.emplace(policy, &denials_.Add({{"policy", policy}})).first;
        }
      }
      c = it->second;
      CountDenial(r);
    }
    c->Increment();
  }
  if (!r.opened) return;
  FlushBytes(r);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count();
  for (void* p : r.sink) {
    if (!p) continue;
    auto* s = static_cast<Series*>(p);
    s->closed->Increment();
    s->duration->Observe(secs);
  }
}

void ConnectionMetrics::TlsFailure(proxy::TlsFailure why) {
  size_t i = static_cast<size_t>(why);
  if (i < tls_by_reason_.size() && tls_by_reason_[i]) tls_by_reason_[i]->Increment();
}

void ConnectionMetrics::CountDenial(const proxy::ConnRecord& r) {
  ConnLabels labels = ConnLabels::From(r, r.reporter);
  std::string key = labels.Key();
  auto it = denials_by_pair_.find(key);
  if (it == denials_by_pair_.end() && denials_by_pair_.size() >= max_series_) {
    labels = ConnLabels::Overflow(r.reporter);
    key = labels.Key();
    it = denials_by_pair_.find(key);
  }
  if (it == denials_by_pair_.end()) it = denials_by_pair_.emplace(std::move(key), Denied{std::move(labels), 0}).first;
  it->second.count++;
}

std::vector<ConnectionMetrics::PairTotals> ConnectionMetrics::Snapshot(size_t limit) const {
  auto count = [](const prometheus::Counter* c) { return static_cast<uint64_t>(c->Value()); };
  std::vector<PairTotals> out;
  std::lock_guard l(mu_);
  std::unordered_set<std::string> merged;  // denial keys already counted with a relayed set
  auto add = [&](const std::string& key, const Series& s) {
    if (out.size() >= limit) return;
    PairTotals p{s.labels, count(s.opened), count(s.closed), count(s.sent), count(s.received), 0};
    if (auto d = denials_by_pair_.find(key); d != denials_by_pair_.end()) {
      p.denials = d->second.count;
      merged.insert(key);
    }
    out.push_back(std::move(p));
  };
  for (const auto& [key, s] : by_key_) add(key, *s);
  for (const auto& o : overflow_) {
    if (o) add(o->labels.Key(), *o);
  }
  for (const auto& [key, d] : denials_by_pair_) {
    if (out.size() >= limit) break;
    if (!merged.count(key)) out.push_back(PairTotals{d.labels, 0, 0, 0, 0, d.count});
  }
  return out;
}

size_t ConnectionMetrics::series() const {
  std::lock_guard l(mu_);
  return by_key_.size();
}

}  // namespace zm::metrics
