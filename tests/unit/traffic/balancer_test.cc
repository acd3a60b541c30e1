// Endpoint selection and split state: round robin spread, locality, least connections, circuit breaker, outlier
// ejection (growing, never all endpoints), smooth weighted splits.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "agent/traffic/balancer.h"
#include "agent/traffic/router.h"
#include "agent/traffic/smooth_weighted.h"

namespace zm::traffic {
namespace {

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

agent::Service MakeService(const std::string& name, const char* vip,
                           std::vector<std::pair<const char*, const char*>> eps) {
  agent::Service s;
  s.name = name;
  s.ns = "shop";
  if (vip) s.vips = {Ip(vip)};
  s.ports = {{80, 8080}};
  for (auto& [ip, node] : eps) s.endpoints.push_back({Ip(ip), "", node});
  return s;
}

std::shared_ptr<const agent::MeshSnapshot> Snap(std::vector<agent::Service> services) {
  return std::make_shared<const agent::MeshSnapshot>("cluster.local", "node1", agent::MeshMode::kStrict,
                                                     std::vector<agent::Workload>{}, std::move(services));
}

TEST(SmoothWeighted, FollowsWeightsExactlyAndInterleaves) {
  SmoothWeighted sw;
  sw.SetWeights({90, 10});
  std::vector<bool> all(2, true);
  int counts[2] = {0, 0};
  int longest_v1_run = 0, run = 0;
  for (int i = 0; i < 2000; ++i) {
    int p = sw.Pick(all);
    ASSERT_GE(p, 0);
    ++counts[p];
    run = p == 0 ? run + 1 : 0;
    longest_v1_run = std::max(longest_v1_run, run);
  }
  EXPECT_EQ(counts[0], 1800);
  EXPECT_EQ(counts[1], 200);
  EXPECT_LE(longest_v1_run, 9);  // 10% is spread evenly, not bunched
  sw.SetWeights({0, 100});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sw.Pick(all), 1);
  EXPECT_EQ(sw.Pick({true, false}), -1);  // the only weighted backend is unavailable
}

TEST(Balancer, RoundRobinSpreadsWithinOne) {
  auto snap = Snap({MakeService("web", "10.96.0.10",
                                {{"10.244.1.11", "node1"}, {"10.244.2.11", "node2"}, {"10.244.2.12", "node2"}})});
  Balancer lb;
  std::map<net::IpAddr, int> counts;
  std::vector<net::IpAddr> none;
  for (int i = 0; i < 2000; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk) << why;
    EXPECT_EQ(r.addr.port, 8080);
    ++counts[r.addr.ip];
  }
  ASSERT_EQ(counts.size(), 3u);
  for (auto& [ip, n] : counts) EXPECT_NEAR(n, 2000.0 / 3, 1.0);
}

TEST(Balancer, RoundRobinIsExactAcrossThreads) {
  // Proxy workers share one balancer: picks from several threads still spread within one per endpoint.
  auto snap = Snap({MakeService("web", "10.96.0.10", {{"10.0.0.1", ""}, {"10.0.0.2", ""}, {"10.0.0.3", ""}})});
  Balancer lb;
  std::mutex mu;
  std::map<net::IpAddr, int> counts;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<net::IpAddr> none;
      for (int i = 0; i < 750; ++i) {
        Route r;
        std::string why;
        if (RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why) != RouteStatus::kOk) continue;
        if (i % 3 == 0) r.lease.Failed();  // outcomes race with picks (outlier detection is off here)
        std::lock_guard<std::mutex> l(mu);
        ++counts[r.addr.ip];
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(counts.size(), 3u);
  for (auto& [ip, n] : counts) EXPECT_EQ(n, 1000);
  for (auto& [ip, n] : counts) EXPECT_EQ(lb.View("shop/web", ip, 8080).active, 0u);  // every lease released
}

TEST(Balancer, RetryPicksDoNotShiftTheRotation) {
  // Two endpoints, the first one failing every try: each request is retried on the other. The retry's pick must not
  // advance the rotation, or every first try would land on the failing endpoint.
  auto snap = Snap({MakeService("web", "10.96.0.10", {{"10.244.1.11", "node1"}, {"10.244.2.11", "node2"}})});
  Balancer lb;
  std::map<net::IpAddr, int> first_tries;
  std::vector<net::IpAddr> none;
  for (int i = 0; i < 100; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk) << why;
    ++first_tries[r.addr.ip];
    if (r.addr.ip != Ip("10.244.1.11")) continue;
    std::vector<net::IpAddr> tried = {r.addr.ip};
    ASSERT_EQ(Reroute(lb, *snap, tried, &r, &why), RouteStatus::kOk) << why;
    EXPECT_EQ(r.addr.ip, Ip("10.244.2.11"));  // the untried one
  }
  EXPECT_EQ(first_tries[Ip("10.244.1.11")], 50);
  EXPECT_EQ(first_tries[Ip("10.244.2.11")], 50);
}

TEST(Balancer, LocalityPreferenceAndUnknownPort) {
  auto svc = MakeService("web", "10.96.0.10", {{"10.244.1.11", "node1"}, {"10.244.2.11", "node2"}});
  svc.policy.locality_preference = true;
  auto snap = Snap({svc});
  Balancer lb;
  std::vector<net::IpAddr> none;
  for (int i = 0; i < 20; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk);
    EXPECT_EQ(r.addr.ip, Ip("10.244.1.11"));
  }
  // Excluding the local one (a retry) falls back to the remote endpoint.
  std::vector<net::IpAddr> tried = {Ip("10.244.1.11")};
  Route r;
  std::string why;
  ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, tried, &r, &why), RouteStatus::kOk);
  EXPECT_EQ(r.addr.ip, Ip("10.244.2.11"));
  EXPECT_EQ(RouteToService(lb, *snap, snap->services()[0], 81, none, &r, &why), RouteStatus::kNoPort);
  EXPECT_NE(why.find("no port 81"), std::string::npos) << why;
}

TEST(Balancer, LeastConnectionsAvoidsBusyEndpoint) {
  auto svc = MakeService("web", nullptr, {{"10.0.0.1", ""}, {"10.0.0.2", ""}});
  svc.policy.algorithm = agent::LbAlgorithm::kLeastConnections;
  auto snap = Snap({svc});
  Balancer lb;
  std::vector<net::IpAddr> none;
  std::vector<Route> held(1);
  std::string why;
  ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &held[0], &why), RouteStatus::kOk);
  net::IpAddr busy = held[0].addr.ip;
  for (int i = 0; i < 10; ++i) {
    Route r;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk);
    EXPECT_NE(r.addr.ip, busy);  // released at the end of each iteration: 0 < 1
  }
}

TEST(Balancer, CircuitBreakerRejectsTheExcessAndReadmits) {
  auto svc = MakeService("web", nullptr, {{"10.0.0.1", ""}});
  svc.policy.max_connections = 3;
  auto snap = Snap({svc});
  Balancer lb;
  std::vector<net::IpAddr> none;
  std::vector<Route> open(3);
  std::string why;
  for (auto& r : open) ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk);
  Route extra;
  EXPECT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &extra, &why), RouteStatus::kOverflow);
  EXPECT_EQ(lb.Overflows("shop/web"), 1u);
  open[0].lease.Release();
  EXPECT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &extra, &why), RouteStatus::kOk);
}

TEST(Balancer, MaxPendingCountsOnlyConnectsInProgress) {
  auto svc = MakeService("web", nullptr, {{"10.0.0.1", ""}});
  svc.policy.max_pending_connections = 1;
  auto snap = Snap({svc});
  Balancer lb;
  std::vector<net::IpAddr> none;
  std::string why;
  Route first, second, third;
  ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &first, &why), RouteStatus::kOk);
  EXPECT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &second, &why), RouteStatus::kOverflow);
  EXPECT_NE(why.find("circuit breaker"), std::string::npos) << why;
  first.lease.Connected();  // established: no longer pending, still active
  EXPECT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &third, &why), RouteStatus::kOk);
  EXPECT_EQ(lb.View("shop/web", Ip("10.0.0.1"), 8080).active, 2u);
}

TEST(Balancer, OutlierEjectionGrowsAndNeverTakesEveryEndpoint) {
  auto svc = MakeService("web", nullptr, {{"10.0.0.1", ""}, {"10.0.0.2", ""}});
  svc.policy.outlier_consecutive_failures = 2;
  svc.policy.outlier_base_ejection = std::chrono::milliseconds(200);
  svc.policy.outlier_max_ejection_percent = 100;
  auto snap = Snap({svc});
  Balancer lb;
  std::vector<net::IpAddr> only1 = {Ip("10.0.0.2")}, only2 = {Ip("10.0.0.1")};
  auto fail = [&](const std::vector<net::IpAddr>& exclude) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, exclude, &r, &why), RouteStatus::kOk);
    r.lease.Failed();
  };
  fail(only1);
  EXPECT_FALSE(lb.View("shop/web", Ip("10.0.0.1"), 8080).ejected);
  fail(only1);
  EXPECT_TRUE(lb.View("shop/web", Ip("10.0.0.1"), 8080).ejected);
  // While 10.0.0.1 is out, every pick goes to 10.0.0.2; failing it too cannot eject the last endpoint.
  std::vector<net::IpAddr> none;
  for (int i = 0; i < 4; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk);
    EXPECT_EQ(r.addr.ip, Ip("10.0.0.2"));
    r.lease.Failed();
  }
  EXPECT_FALSE(lb.View("shop/web", Ip("10.0.0.2"), 8080).ejected);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_FALSE(lb.View("shop/web", Ip("10.0.0.1"), 8080).ejected);  // back after the base interval
  fail(only1);
  fail(only1);
  auto v = lb.View("shop/web", Ip("10.0.0.1"), 8080);
  EXPECT_TRUE(v.ejected);
  EXPECT_EQ(v.ejections, 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_TRUE(lb.View("shop/web", Ip("10.0.0.1"), 8080).ejected);  // second ejection lasts 2x the base
}

TEST(Router, SplitPicksBackendServicesByWeight) {
  auto parent = MakeService("web", "10.96.0.10", {{"10.244.1.11", "node1"}});
  parent.splits.push_back({"shop/canary", 80, {{"shop", "web-v1", 80, 90}, {"shop", "web-v2", 80, 10}}});
  auto snap = Snap({parent, MakeService("web-v1", nullptr, {{"10.244.1.21", "node1"}}),
                    MakeService("web-v2", nullptr, {{"10.244.1.22", "node1"}})});
  Balancer lb;
  std::vector<net::IpAddr> none;
  std::map<std::string, int> counts;
  for (int i = 0; i < 2000; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, *snap->FindService(Ip("10.96.0.10")), 80, none, &r, &why), RouteStatus::kOk);
    ++counts[r.service->name];
  }
  EXPECT_EQ(counts["web-v1"], 1800);
  EXPECT_EQ(counts["web-v2"], 200);
}

TEST(Router, SplitSkipsBackendsWithoutEndpoints) {
  auto parent = MakeService("web", "10.96.0.10", {});
  parent.splits.push_back({"shop/canary", 0, {{"shop", "web-v1", 80, 50}, {"shop", "gone", 80, 50}}});
  auto snap = Snap({parent, MakeService("web-v1", nullptr, {{"10.244.1.21", "node1"}})});
  Balancer lb;
  std::vector<net::IpAddr> none;
  for (int i = 0; i < 10; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, snap->services()[0], 80, none, &r, &why), RouteStatus::kOk) << why;
    EXPECT_EQ(r.service->name, "web-v1");
  }
}

// A dual-stack Service: a client picks endpoints of its own family only (as a ClusterIP of one family routes to
// endpoints of its family), and a split backend with none of that family is unavailable.
TEST(Router, ClientsPickEndpointsOfTheirOwnFamily) {
  auto web = MakeService("web", "10.96.0.10",
                         {{"10.244.1.11", "node1"}, {"fd00:10:244:1::b", "node1"}, {"fd00:10:244:2::b", "node2"}});
  web.vips.push_back(Ip("fd00:96::a"));
  auto v4only = MakeService("legacy", "10.96.0.11", {{"10.244.1.12", "node1"}});
  auto parent = MakeService("split", "10.96.0.12", {});
  parent.vips.push_back(Ip("fd00:96::c"));
  parent.splits.push_back({"shop/canary", 80, {{"shop", "legacy", 80, 50}, {"shop", "web", 80, 50}}});
  auto snap = Snap({web, v4only, parent});
  Balancer lb;
  std::vector<net::IpAddr> none;
  const agent::Service& svc = *snap->FindService(Ip("fd00:96::a"));
  std::map<net::IpAddr, int> v6, v4;
  for (int i = 0; i < 20; ++i) {
    Route r;
    std::string why;
    ASSERT_EQ(RouteToService(lb, *snap, svc, 80, none, &r, &why, AF_INET6), RouteStatus::kOk) << why;
    ++v6[r.addr.ip];
    ASSERT_EQ(RouteToService(lb, *snap, svc, 80, none, &r, &why, AF_INET), RouteStatus::kOk) << why;
    ++v4[r.addr.ip];
  }
  EXPECT_EQ(v6, (std::map<net::IpAddr, int>{{Ip("fd00:10:244:1::b"), 10}, {Ip("fd00:10:244:2::b"), 10}}));
  EXPECT_EQ(v4, (std::map<net::IpAddr, int>{{Ip("10.244.1.11"), 20}}));
  // A retry over IPv6 after the only other IPv6 endpoint failed stays on IPv6.
  Route r;
  std::string why;
  std::vector<net::IpAddr> tried = {Ip("fd00:10:244:1::b")};
  ASSERT_EQ(RouteToService(lb, *snap, svc, 80, tried, &r, &why, AF_INET6), RouteStatus::kOk) << why;
  EXPECT_EQ(r.addr, (net::SockAddr{Ip("fd00:10:244:2::b"), 8080}));
  tried.push_back(Ip("fd00:10:244:2::b"));
  EXPECT_EQ(Reroute(lb, *snap, tried, &r, &why, false, AF_INET6), RouteStatus::kNoEndpoint);
  EXPECT_EQ(why, "service shop/web has no untried endpoint of IPv6");
  // IPv6 clients of an IPv4-only Service find nothing; through a split, only the backend with IPv6 endpoints.
  EXPECT_EQ(RouteToService(lb, *snap, *snap->FindService(Ip("10.96.0.11")), 80, none, &r, &why, AF_INET6),
            RouteStatus::kNoEndpoint);
  EXPECT_EQ(why, "service shop/legacy has no endpoint of IPv6");
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(RouteToService(lb, *snap, *snap->FindService(Ip("fd00:96::c")), 80, none, &r, &why, AF_INET6),
              RouteStatus::kOk)
        << why;
    EXPECT_EQ(r.service->name, "web");
    EXPECT_TRUE(r.addr.ip.is_v6());
  }
}
}  // namespace
}  // namespace zm::traffic
