#include "agent/traffic/balancer.h"

#include <algorithm>

namespace zm::traffic {
namespace {

constexpr auto kMaxEjection = std::chrono::minutes(5);
// EWMA's cost of an endpoint with requests in flight and no answer yet (ns): above any measured one.
constexpr double kUnknownPenalty = 1e12;

net::SockAddr EndpointKey(const net::IpAddr& ip, uint16_t port) {
  return net::SockAddr{ip, port};
}

// Peak-EWMA cost of one more request on |e| (Finagle): latency x (in flight + 1). An endpoint with no sample yet costs
// nothing while idle, so a new endpoint is tried at once, and the penalty once requests are in flight on it, so it is
// not flooded before its first answer tells how fast it is.
double EwmaCost(const EndpointState& e, Clock::time_point now) {
  const double in_flight = e.requests.load(std::memory_order_relaxed);
  const double est = e.latency.Estimate(now);
  if (est < 0) return in_flight == 0 ? 0 : kUnknownPenalty + in_flight;
  return est * (in_flight + 1);
}

}  // namespace

RequestLoad::RequestLoad(std::shared_ptr<EndpointState> ep, Clock::time_point start)
    : ep_(std::move(ep)), start_(start) {
  ep_->requests.fetch_add(1, std::memory_order_relaxed);
}

RequestLoad& RequestLoad::operator=(RequestLoad&& o) noexcept {
  if (this == &o) return *this;
  Release();
  ep_ = std::move(o.ep_);
  start_ = o.start_;
  observed_ = o.observed_;
  return *this;
}

void RequestLoad::Observe(Clock::time_point now) {
  if (!ep_ || observed_) return;
  observed_ = true;
  ep_->latency.Observe(now, now - start_);
}

void RequestLoad::Release() {
  if (!ep_) return;
  ep_->requests.fetch_sub(1, std::memory_order_relaxed);
  ep_.reset();
}

Lease::Lease(std::shared_ptr<ServiceState> svc, std::shared_ptr<EndpointState> ep,
             const agent::ServiceTrafficPolicy* pol)
    : svc_(std::move(svc)), ep_(std::move(ep)), pending_(true) {
  // The service's active and pending counts were reserved by Balancer::Pick.
  ep_->active.fetch_add(1, std::memory_order_relaxed);
  if (pol != nullptr) {
    consecutive_limit_ = pol->outlier_consecutive_failures;
    base_ejection_ = pol->outlier_base_ejection;
    max_ejection_percent_ = pol->outlier_max_ejection_percent;
  }
}

Lease& Lease::operator=(Lease&& o) noexcept {
  if (this == &o) return *this;
  Release();
  svc_ = std::move(o.svc_);
  ep_ = std::move(o.ep_);
  pending_ = o.pending_;
  consecutive_limit_ = o.consecutive_limit_;
  base_ejection_ = o.base_ejection_;
  max_ejection_percent_ = o.max_ejection_percent_;
  o.pending_ = false;
  return *this;
}

void Lease::Connected() {
  if (!ep_ || !pending_) return;
  pending_ = false;
  svc_->pending.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(svc_->mu);
  ep_->consecutive_failures = 0;
}

void Lease::Failed() {
  if (!ep_ || !pending_) return;
  pending_ = false;
  svc_->pending.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(svc_->mu);
  ++ep_->consecutive_failures;
  if (consecutive_limit_ == 0 || ep_->consecutive_failures < consecutive_limit_) return;
  auto now = Clock::now();
  if (ep_->ejected_until > now) return;
  size_t ejected = 0;
  for (const auto& [k, e] : svc_->endpoints) ejected += e->ejected_until > now;
  // Never eject every endpoint: at most max% of them (at least one), always leaving one in rotation.
  size_t n = svc_->endpoint_count;
  size_t allowed = std::max<size_t>(1, n * max_ejection_percent_ / 100);
  if (n == 0 || allowed > n - 1) allowed = n == 0 ? 0 : n - 1;
  if (ejected >= allowed) return;
  ++ep_->ejections;
  auto interval = std::min<std::chrono::milliseconds>(base_ejection_ * ep_->ejections, kMaxEjection);
  ep_->ejected_until = now + interval;
  ep_->consecutive_failures = 0;
  svc_->ejections_total.fetch_add(1, std::memory_order_relaxed);
}

void Lease::Release() {
  if (!ep_) return;
  if (pending_) svc_->pending.fetch_sub(1, std::memory_order_relaxed);
  svc_->active.fetch_sub(1, std::memory_order_relaxed);
  ep_->active.fetch_sub(1, std::memory_order_relaxed);
  pending_ = false;
  ep_.reset();
  svc_.reset();
}

std::shared_ptr<ServiceState> Balancer::StateOf(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto& s = services_[key];
  if (!s) s = std::make_shared<ServiceState>();
  return s;
}

PickStatus Balancer::Pick(const PickRequest& req, size_t* index, Lease* lease) {
  const agent::Service& svc = *req.service;
  const agent::ServiceTrafficPolicy& pol = svc.policy;
  auto st = StateOf(svc.Key());
  // Reserve first, then check: two workers racing for the last slot cannot both get it.
  uint32_t active_before = st->active.fetch_add(1, std::memory_order_relaxed);
  uint32_t pending_before = st->pending.fetch_add(1, std::memory_order_relaxed);
  auto unreserve = [&] {
    st->active.fetch_sub(1, std::memory_order_relaxed);
    st->pending.fetch_sub(1, std::memory_order_relaxed);
  };
  if ((pol.max_connections != 0 && active_before >= pol.max_connections) ||
      (pol.max_pending_connections != 0 && pending_before >= pol.max_pending_connections)) {
    unreserve();
    st->overflows.fetch_add(1, std::memory_order_relaxed);
    return PickStatus::kOverflow;
  }
  std::unique_lock<std::mutex> l(st->mu);
  st->endpoint_count = svc.endpoints.size();
  const auto now = Now();
  std::vector<size_t> tried_ok, healthy;
  std::vector<EndpointState*> states(svc.endpoints.size());
  std::vector<std::shared_ptr<EndpointState>> holders(svc.endpoints.size());
  for (size_t i = 0; i < svc.endpoints.size(); ++i) {
    const auto& ep = svc.endpoints[i];
    if (req.family != 0 && ep.ip.family() != req.family) continue;
    if (req.exclude && std::find(req.exclude->begin(), req.exclude->end(), ep.ip) != req.exclude->end()) continue;
    auto& h = st->endpoints[EndpointKey(ep.ip, req.target_port)];
    if (!h) h = std::make_shared<EndpointState>();
    holders[i] = h;
    states[i] = h.get();
    tried_ok.push_back(i);
    if (h->ejected_until <= now) healthy.push_back(i);
  }
  std::vector<size_t>& pool = healthy.empty() ? tried_ok : healthy;  // all ejected: better some than none
  if (pol.locality_preference && req.local_node != nullptr) {
    std::vector<size_t> local;
    for (size_t i : pool) {
      if (svc.endpoints[i].node == *req.local_node) local.push_back(i);
    }
    if (!local.empty()) pool.swap(local);
  }
  if (pool.empty()) {
    unreserve();
    return PickStatus::kNoEndpoint;
  }
  size_t chosen = pool[0];
  auto active = [&](size_t i) { return states[i]->active.load(std::memory_order_relaxed); };
  // A second pick for the same connection or request (a retry, a reroute after a failed connect) takes the rotation's
  // current place among the untried endpoints without moving it: advanced, it would shift every first pick by one,
  // and with two endpoints a request retried off the bad one would send the next first try to the bad one again.
  const bool repick = req.exclude != nullptr && !req.exclude->empty();
  uint64_t& rr = st->rr[req.family == AF_INET6 ? 1 : 0];
  auto next = [&] { return repick ? rr : rr++; };
  // Two distinct random endpoints, the one of lower |cost| (the first on a tie): power of two choices, as Envoy's
  // LEAST_REQUEST and Linkerd's EWMA balancer pick.
  auto two_choices = [&](auto cost) {
    if (pool.size() == 1) return pool[0];
    size_t a = st->rng() % pool.size();
    size_t b = st->rng() % (pool.size() - 1);
    if (b >= a) ++b;
    return cost(pool[b]) < cost(pool[a]) ? pool[b] : pool[a];
  };
  switch (pol.algorithm) {
    case agent::LbAlgorithm::kRoundRobin:
      chosen = pool[next() % pool.size()];
      break;
    case agent::LbAlgorithm::kLeastConnections: {
      // Start the scan at a rotating offset so ties spread instead of always hitting the first endpoint.
      size_t start = next() % pool.size();
      chosen = pool[start];
      for (size_t k = 1; k < pool.size(); ++k) {
        size_t i = pool[(start + k) % pool.size()];
        if (active(i) < active(chosen)) chosen = i;
      }
      break;
    }
    case agent::LbAlgorithm::kPowerOfTwoChoices:
      chosen = two_choices(active);
      break;
    case agent::LbAlgorithm::kLeastRequest:
      chosen = req.load ? two_choices([&](size_t i) { return states[i]->requests.load(std::memory_order_relaxed); })
                        : two_choices(active);
      break;
    case agent::LbAlgorithm::kEwma:
      chosen = req.load ? two_choices([&](size_t i) { return EwmaCost(*states[i], now); }) : two_choices(active);
      break;
  }
  *index = chosen;
  auto ep = holders[chosen];
  if (req.load != nullptr) *req.load = RequestLoad(ep, now);
  l.unlock();
  *lease = Lease(std::move(st), std::move(ep), &pol);
  return PickStatus::kOk;
}

int Balancer::PickWeighted(SmoothWeighted& sw, const std::vector<agent::BackendRef>& backends,
                           const std::vector<bool>& available) {
  std::vector<uint32_t> weights;
  weights.reserve(backends.size());
  for (const auto& b : backends) weights.push_back(b.weight);
  sw.SetWeights(weights);
  return sw.Pick(available);
}

int Balancer::PickBackend(const agent::Service& parent, const agent::TrafficSplit& split,
                          const std::vector<bool>& available) {
  auto st = StateOf(parent.Key());
  std::lock_guard<std::mutex> l(st->mu);
  return PickWeighted(st->splits[split.port], split.backends, available);
}

int Balancer::PickHttpBackend(const agent::Service& parent, const agent::HttpRouteRule& rule,
                              const std::vector<bool>& available) {
  auto st = StateOf(parent.Key());
  std::lock_guard<std::mutex> l(st->mu);
  return PickWeighted(st->http_rule_splits[rule.key], rule.backends, available);
}

Balancer::EndpointView Balancer::View(const std::string& service_key, const net::IpAddr& ip, uint16_t port) {
  auto st = StateOf(service_key);
  std::lock_guard<std::mutex> l(st->mu);
  EndpointView v;
  auto it = st->endpoints.find(EndpointKey(ip, port));
  if (it == st->endpoints.end()) return v;
  v.active = it->second->active.load(std::memory_order_relaxed);
  v.requests = it->second->requests.load(std::memory_order_relaxed);
  const double est = it->second->latency.Estimate(Now());
  v.latency_ms = est < 0 ? est : est / 1e6;
  v.ejections = it->second->ejections;
  v.ejected = it->second->ejected_until > Now();
  return v;
}

uint64_t Balancer::Overflows(const std::string& service_key) {
  return StateOf(service_key)->overflows.load(std::memory_order_relaxed);
}

}  // namespace zm::traffic
