// Per-request balancing (LeastRequest, EWMA) on a fake clock with injected latencies: requests run in a discrete-event
// simulation (a fixed number in flight; each ends after its endpoint's latency), so every figure is deterministic.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "agent/traffic/balancer.h"
#include "agent/traffic/peak_ewma.h"
#include "agent/traffic/router.h"

namespace zm::traffic {
namespace {

using namespace std::chrono_literals;
using agent::LbAlgorithm;

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

std::shared_ptr<const agent::MeshSnapshot> Snap(LbAlgorithm algo, std::vector<const char*> ips) {
  agent::Service s;
  s.name = "web";
  s.ns = "shop";
  s.vips = {Ip("10.96.0.10")};
  s.ports = {{80, 8080, agent::PortProtocol::kHttp}};
  for (const char* ip : ips) s.endpoints.push_back({Ip(ip), "", ""});
  s.policy.algorithm = algo;
  return std::make_shared<const agent::MeshSnapshot>("cluster.local", "node1", agent::MeshMode::kStrict,
                                                     std::vector<agent::Workload>{},
                                                     std::vector<agent::Service>{std::move(s)});
}

const Clock::time_point kT0 = Clock::time_point(1h);

struct SimResult {
  std::map<net::IpAddr, int> picks;
  std::vector<Clock::time_point> slow_picks;  // when the slow endpoint was picked
};

// |total| requests, |concurrency| of them in flight at a time, to 10.0.0.1 (|slow|) and 10.0.0.2 (|fast|).
SimResult Simulate(LbAlgorithm algo, int concurrency, int total, std::chrono::nanoseconds slow,
                   std::chrono::nanoseconds fast) {
  auto snap = Snap(algo, {"10.0.0.1", "10.0.0.2"});
  Clock::time_point now = kT0;
  Balancer lb([&] { return now; });
  struct Flying {
    Clock::time_point done;
    Route route;
  };
  std::vector<Flying> flying;
  SimResult out;
  int sent = 0;
  while (sent < total || !flying.empty()) {
    while (sent < total && static_cast<int>(flying.size()) < concurrency) {
      Route r;
      std::string why;
      EXPECT_EQ(RouteHttpRequest(lb, *snap, snap->services()[0], 80, nullptr, &r, &why), RouteStatus::kOk) << why;
      const bool is_slow = r.addr.ip == Ip("10.0.0.1");
      ++out.picks[r.addr.ip];
      if (is_slow) out.slow_picks.push_back(now);
      ++sent;
      flying.push_back({now + (is_slow ? slow : fast), std::move(r)});
    }
    auto next = std::min_element(flying.begin(), flying.end(),
                                 [](const Flying& a, const Flying& b) { return a.done < b.done; });
    now = next->done;
    next->route.load.Observe(now);  // the response head
    flying.erase(next);             // the response ended: no longer in flight
  }
  return out;
}

TEST(RequestBalancing, EwmaMovesLoadAwayFromSlowEndpoint) {
  // One keep-alive client (one request at a time): latency alone decides.
  SimResult ewma = Simulate(LbAlgorithm::kEwma, 1, 300, 50ms, 1ms);
  EXPECT_GE(ewma.picks[Ip("10.0.0.2")], 295);  // the slow one is tried about once, then left alone
  EXPECT_GE(ewma.picks[Ip("10.0.0.1")], 1);    // but it was tried (no sample: no cost)
  SimResult rr = Simulate(LbAlgorithm::kRoundRobin, 1, 300, 50ms, 1ms);
  EXPECT_EQ(rr.picks[Ip("10.0.0.1")], 150);
  EXPECT_EQ(rr.picks[Ip("10.0.0.2")], 150);
  // With requests in flight too, the slow endpoint's queue adds to its cost.
  SimResult busy = Simulate(LbAlgorithm::kEwma, 8, 400, 50ms, 1ms);
  EXPECT_GT(busy.picks[Ip("10.0.0.2")], 400 * 9 / 10);
}

TEST(RequestBalancing, EwmaProbesASlowEndpointAgainAsItsEstimateDecays) {
  // 50 ms vs 20 ms: without new samples the slow estimate decays (10 s) below the fast one's after ~9 s.
  SimResult r = Simulate(LbAlgorithm::kEwma, 1, 1000, 50ms, 20ms);
  ASSERT_GE(r.slow_picks.size(), 2u);
  EXPECT_GT(r.slow_picks[1] - kT0, 5s);  // not before its estimate decayed
  EXPECT_LT(r.slow_picks.size(), 100u);  // and only now and then
}

TEST(RequestBalancing, LeastRequestMovesLoadAwayFromBusyEndpoint) {
  SimResult lr = Simulate(LbAlgorithm::kLeastRequest, 8, 400, 50ms, 1ms);
  EXPECT_GT(lr.picks[Ip("10.0.0.2")], 400 * 3 / 4);
  SimResult rr = Simulate(LbAlgorithm::kRoundRobin, 8, 400, 50ms, 1ms);
  EXPECT_EQ(rr.picks[Ip("10.0.0.2")], 200);
  // Sequential requests leave nothing in flight to compare: least request has no reason to prefer either.
  SimResult seq = Simulate(LbAlgorithm::kLeastRequest, 1, 400, 50ms, 1ms);
  EXPECT_GT(seq.picks[Ip("10.0.0.1")], 100);
  EXPECT_GT(seq.picks[Ip("10.0.0.2")], 100);
}

TEST(RequestBalancing, EwmaTriesANewEndpointButDoesNotFloodIt) {
  Clock::time_point now = kT0;
  Balancer lb([&] { return now; });
  auto snap = Snap(LbAlgorithm::kEwma, {"10.0.0.1", "10.0.0.2"});
  std::string why;
  for (int i = 0; i < 20; ++i) {  // both known: 10 ms each
    Route r;
    ASSERT_EQ(RouteHttpRequest(lb, *snap, snap->services()[0], 80, nullptr, &r, &why), RouteStatus::kOk);
    now += 10ms;
    r.load.Observe(now);
  }
  // A third endpoint appears: idle and unmeasured, it costs nothing, so it gets the next requests it is drawn for.
  auto grown = Snap(LbAlgorithm::kEwma, {"10.0.0.1", "10.0.0.2", "10.0.0.3"});
  std::vector<Route> held;
  int to_new = 0;
  for (int i = 0; i < 12; ++i) {
    Route r;
    ASSERT_EQ(RouteHttpRequest(lb, *grown, grown->services()[0], 80, nullptr, &r, &why), RouteStatus::kOk);
    to_new += r.addr.ip == Ip("10.0.0.3");
    held.push_back(std::move(r));  // none answers yet
  }
  // Once one request is in flight on it without an answer, it is penalized: exactly one went there.
  EXPECT_EQ(to_new, 1);
  EXPECT_EQ(lb.View("shop/web", Ip("10.0.0.3"), 8080).requests, 1u);
  EXPECT_LT(lb.View("shop/web", Ip("10.0.0.3"), 8080).latency_ms, 0);  // no sample yet
  held.clear();
  EXPECT_EQ(lb.View("shop/web", Ip("10.0.0.3"), 8080).requests, 0u);
  EXPECT_NEAR(lb.View("shop/web", Ip("10.0.0.1"), 8080).latency_ms, 10.0, 0.01);
}

TEST(RequestBalancing, AnInjectedDelayIsNotTheEndpointsLatency) {
  Clock::time_point now = kT0;
  Balancer lb([&] { return now; });
  auto snap = Snap(LbAlgorithm::kEwma, {"10.0.0.1"});
  std::string why;
  Route r;
  ASSERT_EQ(RouteHttpRequest(lb, *snap, snap->services()[0], 80, nullptr, &r, &why), RouteStatus::kOk);
  now += 200ms;  // a route's fault delay held the request after its pick
  r.load.RestartClock(now);
  now += 5ms;  // then the endpoint answered
  r.load.Observe(now);
  EXPECT_NEAR(lb.View("shop/web", Ip("10.0.0.1"), 8080).latency_ms, 5.0, 0.01);
}

TEST(RequestBalancing, RetryExcludesTheFailedEndpoint) {
  Clock::time_point now = kT0;
  Balancer lb([&] { return now; });
  auto snap = Snap(LbAlgorithm::kEwma, {"10.0.0.1", "10.0.0.2"});
  std::string why;
  // 10.0.0.1 fast, 10.0.0.2 slow: EWMA prefers .1, but a retry off .1 must go to .2.
  for (const char* ip : {"10.0.0.1", "10.0.0.2"}) {
    for (int i = 0; i < 4; ++i) {
      Route r;
      std::vector<net::IpAddr> not_this = {Ip(ip) == Ip("10.0.0.1") ? Ip("10.0.0.2") : Ip("10.0.0.1")};
      r.service = &snap->services()[0];
      r.service_port = 80;
      ASSERT_EQ(Reroute(lb, *snap, not_this, &r, &why, true), RouteStatus::kOk);
      ASSERT_EQ(r.addr.ip, Ip(ip));
      now += Ip(ip) == Ip("10.0.0.1") ? 1ms : 40ms;
      r.load.Observe(now);
    }
  }
  for (int i = 0; i < 10; ++i) {
    Route r;
    ASSERT_EQ(RouteHttpRequest(lb, *snap, snap->services()[0], 80, nullptr, &r, &why), RouteStatus::kOk);
    ASSERT_EQ(r.addr.ip, Ip("10.0.0.1"));
    std::vector<net::IpAddr> tried = {r.addr.ip};
    ASSERT_EQ(Reroute(lb, *snap, tried, &r, &why, true), RouteStatus::kOk);
    EXPECT_EQ(r.addr.ip, Ip("10.0.0.2"));
    EXPECT_EQ(lb.View("shop/web", Ip("10.0.0.1"), 8080).requests, 0u);  // the first try's hold went with it
    EXPECT_EQ(lb.View("shop/web", Ip("10.0.0.2"), 8080).requests, 1u);
  }
}

TEST(RequestBalancing, OnL4PortsBothWeighConnections) {
  for (LbAlgorithm algo : {LbAlgorithm::kLeastRequest, LbAlgorithm::kEwma}) {
    auto snap = Snap(algo, {"10.0.0.1", "10.0.0.2"});
    Balancer lb;
    std::vector<net::IpAddr> none;
    std::string why;
    Route busy;  // one long connection
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &busy, &why), RouteStatus::kOk);
    for (int i = 0; i < 20; ++i) {
      Route r;
      ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk);
      EXPECT_NE(r.addr.ip, busy.addr.ip) << agent::LbAlgorithmName(algo);
      EXPECT_EQ(lb.View("shop/web", r.addr.ip, 8080).requests, 0u);  // a connection is no request
    }
  }
}

TEST(PeakEwma, PeaksAtOnceDecaysSlowly) {
  PeakEwma e;
  EXPECT_LT(e.Estimate(kT0), 0);
  e.Observe(kT0, 10ms);
  EXPECT_DOUBLE_EQ(e.Estimate(kT0), 1e7);
  e.Observe(kT0 + 1ms, 100ms);  // a peak replaces the estimate
  EXPECT_DOUBLE_EQ(e.Estimate(kT0 + 1ms), 1e8);
  e.Observe(kT0 + 1ms + 10s, 0ms);  // a low sample 10 s later: 1/e of the old one stays
  EXPECT_NEAR(e.Estimate(kT0 + 1ms + 10s), 1e8 / std::exp(1.0), 1e3);
  // No samples: it decays toward zero.
  EXPECT_NEAR(e.Estimate(kT0 + 1ms + 20s), 1e8 / std::exp(2.0), 1e3);
}

TEST(LbAlgorithm, NamesRoundTrip) {
  for (LbAlgorithm a : {LbAlgorithm::kRoundRobin, LbAlgorithm::kLeastConnections, LbAlgorithm::kPowerOfTwoChoices,
                        LbAlgorithm::kLeastRequest, LbAlgorithm::kEwma}) {
    LbAlgorithm back = LbAlgorithm::kRoundRobin;
    ASSERT_TRUE(agent::ParseLbAlgorithm(agent::LbAlgorithmName(a), &back));
    EXPECT_EQ(back, a);
  }
  LbAlgorithm x;
  EXPECT_FALSE(agent::ParseLbAlgorithm("Ewma", &x));
}

}  // namespace
}  // namespace zm::traffic
