// Endpoint selection for Services, shared by every proxy worker and kept across config versions: round robin counters,
// live connection counts (least connections, power of two choices, circuit breaker), requests in flight and peak-EWMA
// latency per endpoint (least request, EWMA: HTTP and gRPC ports), outlier ejection and the weighted-split state.
// Keyed by "<namespace>/<name>" and endpoint address, so a new snapshot keeps the counters of endpoints that did not
// change.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "agent/state/service.h"
#include "agent/traffic/peak_ewma.h"
#include "agent/traffic/smooth_weighted.h"

namespace zm::traffic {

using Clock = std::chrono::steady_clock;

struct EndpointState {
  std::atomic<uint32_t> active{0};
  std::atomic<uint32_t> requests{0};  // HTTP requests / gRPC calls in flight (RequestLoad)
  PeakEwma latency;                   // to the response head, of those requests
  // Outlier detection; guarded by the service's mutex.
  uint32_t consecutive_failures = 0;
  uint32_t ejections = 0;
  Clock::time_point ejected_until{};
};

struct ServiceState {
  std::mutex mu;
  // Round-robin positions: [1] for IPv6 clients, [0] for the rest, so that dual-stack clients interleaving families
  // do not each see every other position (their candidate lists differ).
  uint64_t rr[2] = {0, 0};
  std::map<net::SockAddr, std::shared_ptr<EndpointState>> endpoints;  // by endpoint ip and target port
  std::map<uint16_t, SmoothWeighted> splits;                          // by parent port
  std::map<std::string, SmoothWeighted> http_rule_splits;             // by HttpRouteRule::key
  std::minstd_rand rng{0x5eed};
  std::atomic<uint32_t> active{0};   // connections to any endpoint (circuit breaker)
  std::atomic<uint32_t> pending{0};  // of those, still connecting
  std::atomic<uint64_t> overflows{0};
  std::atomic<uint64_t> ejections_total{0};
  size_t endpoint_count = 0;  // of the latest snapshot (the map may still hold removed ones); guarded by mu
};

// One picked endpoint for one connection: counts it as active (and pending until Connected/Failed) while it lives.
class Lease {
 public:
  Lease() = default;
  Lease(std::shared_ptr<ServiceState> svc, std::shared_ptr<EndpointState> ep, const agent::ServiceTrafficPolicy* pol);
  Lease(Lease&& o) noexcept { *this = std::move(o); }
  Lease& operator=(Lease&& o) noexcept;
  ~Lease() { Release(); }

  explicit operator bool() const { return ep_ != nullptr; }
  void Connected();  // the connect (or HBONE CONNECT) succeeded
  void Failed();     // refused or timed out: counts toward outlier ejection
  void Release();

 private:
  std::shared_ptr<ServiceState> svc_;
  std::shared_ptr<EndpointState> ep_;
  bool pending_ = false;
  // Outlier settings copied at pick time: the snapshot may be gone when the outcome arrives.
  uint32_t consecutive_limit_ = 0;
  std::chrono::milliseconds base_ejection_{0};
  uint32_t max_ejection_percent_ = 0;
};

// One HTTP request (or gRPC call) on a picked endpoint, for the per-request algorithms: counts it among the
// endpoint's requests in flight until released, and gives the endpoint's latency estimate one sample, the time from
// the pick to the response head (or to a timeout: the endpoint was at least that slow).
class RequestLoad {
 public:
  RequestLoad() = default;
  RequestLoad(std::shared_ptr<EndpointState> ep, Clock::time_point start);
  RequestLoad(RequestLoad&& o) noexcept { *this = std::move(o); }
  RequestLoad& operator=(RequestLoad&& o) noexcept;
  ~RequestLoad() { Release(); }

  void Observe(Clock::time_point now);  // the response head arrived (once; later calls do nothing)
  // The request only now goes to the endpoint (an injected delay held it): latency counts from here, so a route's
  // fault delay does not make its endpoint look slow to EWMA.
  void RestartClock(Clock::time_point now) { start_ = now; }
  bool WantsSample() const { return ep_ != nullptr && !observed_; }
  void Release();  // the request is no longer in flight on this endpoint

 private:
  std::shared_ptr<EndpointState> ep_;
  Clock::time_point start_{};
  bool observed_ = false;
};

struct PickRequest {
  const agent::Service* service = nullptr;            // where the endpoint comes from
  uint16_t target_port = 0;                           // the endpoint port (after the targetPort mapping)
  const std::string* local_node = nullptr;            // for locality preference
  const std::vector<net::IpAddr>* exclude = nullptr;  // endpoints already tried by this connection
  // The client's address family (AF_INET, AF_INET6): a dual-stack Service's endpoints of the other family are not
  // candidates, as a Kubernetes ClusterIP of one family routes to endpoints of its family. 0: any.
  int family = 0;
  // Non-null: the pick is for one HTTP request, which *load then holds (in flight, latency); LeastRequest and EWMA
  // weigh requests. Null: for a connection; they weigh connections.
  RequestLoad* load = nullptr;
};

enum class PickStatus { kOk, kNoEndpoint, kOverflow };

class Balancer {
 public:
  using NowFn = std::function<Clock::time_point()>;
  Balancer() = default;
  explicit Balancer(NowFn now) : now_(std::move(now)) {}  // a fake clock for tests

  // Picks an endpoint index of req.service; on kOk fills *index and *lease.
  PickStatus Pick(const PickRequest& req, size_t* index, Lease* lease);
  // The backend index (into split.backends) for a new connection to the parent; available[i] says whether backend i
  // has endpoints. -1 when none can take it.
  int PickBackend(const agent::Service& parent, const agent::TrafficSplit& split, const std::vector<bool>& available);
  // The same for one request matched to an HTTPRoute rule (smooth weighted round robin per rule, shared by workers).
  int PickHttpBackend(const agent::Service& parent, const agent::HttpRouteRule& rule,
                      const std::vector<bool>& available);

  struct EndpointView {
    uint32_t active = 0;
    uint32_t requests = 0;
    double latency_ms = -1;  // the peak-EWMA estimate now; < 0: no sample yet
    uint32_t ejections = 0;
    bool ejected = false;
  };
  // For the config dump and tests.
  EndpointView View(const std::string& service_key, const net::IpAddr& ip, uint16_t port);
  uint64_t Overflows(const std::string& service_key);

 private:
  // |sw| set to the weights of |backends|, then a pick among the available ones. The state's mutex held.
  static int PickWeighted(SmoothWeighted& sw, const std::vector<agent::BackendRef>& backends,
                          const std::vector<bool>& available);
  std::shared_ptr<ServiceState> StateOf(const std::string& key);
  Clock::time_point Now() const { return now_ ? now_() : Clock::now(); }

  NowFn now_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ServiceState>> services_;
};

}  // namespace zm::traffic
