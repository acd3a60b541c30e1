// TrafficStore: per pair totals and rates from the agents' reports, each connection counted once, agent restarts,
// stale agents and reports too close together for a rate.
#include "controller/traffic/traffic_store.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace zm::ctrl {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = TrafficStore::Clock;
namespace v1 = zeromesh::v1;

std::string Spiffe(const std::string& sa) {
  return "spiffe://cluster.local/ns/shop/sa/" + sa;
}

struct Counts {
  uint64_t opened = 0, sent = 0, received = 0, denials = 0;
};

// A label set as the agent's metrics name it; "unknown" principal = plaintext, "unknown" workload = not in the mesh.
void Add(v1::AgentStatus* s, const std::string& reporter, const std::string& src, const std::string& src_principal,
         const std::string& dst, Counts c) {
  auto* t = s->add_traffic();
  t->set_reporter(reporter);
  t->set_source_workload(src);
  t->set_source_namespace(src == "unknown" ? "unknown" : "shop");
  t->set_source_principal(src_principal);
  t->set_destination_workload(dst);
  t->set_destination_namespace("shop");
  t->set_destination_principal(Spiffe(dst));
  t->set_connections_opened(c.opened);
  t->set_connections_closed(c.opened);
  t->set_bytes_sent(c.sent);
  t->set_bytes_received(c.received);
  t->set_denials(c.denials);
}

v1::AgentStatus One(const std::string& reporter, Counts c) {
  v1::AgentStatus s;
  Add(&s, reporter, "frontend", Spiffe("frontend"), "backend", c);
  return s;
}

const TrafficStore::Pair* Find(const std::vector<TrafficStore::Pair>& pairs, const std::string& src,
                               const std::string& dst, bool mtls) {
  for (const auto& p : pairs) {
    if (p.source == src && p.destination == dst && p.mtls == mtls) return &p;
  }
  return nullptr;
}

TEST(TrafficStore, RatesAreTheDifferenceBetweenAnAgentsLastTwoReports) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  store.Record("node1", One("source", {10, 100, 1000, 1}), t0);
  auto first = store.Pairs(t0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].connections_total, 10u);
  EXPECT_EQ(first[0].connections_per_second, 0);  // one report: no rate yet

  store.Record("node1", One("source", {30, 500, 2600, 5}), t0 + seconds(2));
  auto pairs = store.Pairs(t0 + seconds(3));
  ASSERT_EQ(pairs.size(), 1u);
  const auto& p = pairs[0];
  EXPECT_EQ(p.source, "shop/frontend");
  EXPECT_EQ(p.destination, "shop/backend");
  EXPECT_EQ(p.source_principal, Spiffe("frontend"));
  EXPECT_TRUE(p.mtls);
  EXPECT_DOUBLE_EQ(p.connections_per_second, 10);  // (30 - 10) / 2 s
  EXPECT_DOUBLE_EQ(p.bytes_per_second, 1000);      // (3100 - 1100) / 2 s
  EXPECT_DOUBLE_EQ(p.errors_per_second, 2);        // (5 - 1) denials / 2 s
  EXPECT_EQ(p.connections_total, 30u);
  EXPECT_EQ(p.bytes_total, 3100u);
  EXPECT_EQ(p.denials_total, 5u);
}

TEST(TrafficStore, EachConnectionIsCountedOnce) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  // frontend (node1) -> backend (node2) over HBONE: both proxies count it.
  // A plaintext client outside the mesh -> backend: only the destination's proxy sees it.
  // frontend -> cache, both on node1: the same proxy counts it as source and as destination.
  for (int i = 0; i < 2; ++i) {
    auto at = t0 + seconds(2 * i);
    uint64_t k = i + 1;
    v1::AgentStatus node1, node2;
    Add(&node1, "source", "frontend", Spiffe("frontend"), "backend", {10 * k, 100 * k, 0, 0});
    Add(&node2, "destination", "frontend", Spiffe("frontend"), "backend", {10 * k + 1, 100 * k, 0, 0});
    Add(&node2, "destination", "unknown", "unknown", "backend", {3 * k, 30 * k, 0, k});
    Add(&node1, "source", "frontend", Spiffe("frontend"), "cache", {4 * k, 0, 0, 0});
    Add(&node1, "destination", "frontend", Spiffe("frontend"), "cache", {4 * k, 0, 0, 0});
    store.Record("node1", node1, at);
    store.Record("node2", node2, at);
  }
  auto pairs = store.Pairs(t0 + seconds(2));
  ASSERT_EQ(pairs.size(), 3u);
  const auto* hbone = Find(pairs, "shop/frontend", "shop/backend", true);
  ASSERT_NE(hbone, nullptr);
  EXPECT_EQ(hbone->connections_total, 20u);  // the source's count, not the destination's 21, nor 41
  EXPECT_DOUBLE_EQ(hbone->connections_per_second, 5);
  const auto* plain = Find(pairs, "unknown", "shop/backend", false);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->source_principal, "unknown");
  EXPECT_EQ(plain->connections_total, 6u);
  EXPECT_EQ(plain->denials_total, 2u);
  EXPECT_DOUBLE_EQ(plain->errors_per_second, 0.5);
  const auto* local = Find(pairs, "shop/frontend", "shop/cache", true);
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->connections_total, 8u);
  EXPECT_DOUBLE_EQ(local->connections_per_second, 2);
}

TEST(TrafficStore, SourcesOnSeveralNodesAddUp) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  store.Record("node1", One("source", {1, 0, 0, 0}), t0);
  store.Record("node3", One("source", {2, 0, 0, 0}), t0);
  store.Record("node1", One("source", {5, 0, 0, 0}), t0 + seconds(1));
  store.Record("node3", One("source", {4, 0, 0, 0}), t0 + seconds(2));
  auto pairs = store.Pairs(t0 + seconds(2));
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].connections_total, 9u);
  EXPECT_DOUBLE_EQ(pairs[0].connections_per_second, 4 + 1);  // 4 in 1 s + 2 in 2 s
}

TEST(TrafficStore, ACounterThatWentDownIsARestartedAgent) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  store.Record("node1", One("source", {100, 5000, 0, 0}), t0);
  store.Record("node1", One("source", {6, 800, 0, 0}), t0 + seconds(2));
  auto pairs = store.Pairs(t0 + seconds(2));
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_DOUBLE_EQ(pairs[0].connections_per_second, 3);  // 6 new connections since the restart, not -47/s
  EXPECT_DOUBLE_EQ(pairs[0].bytes_per_second, 400);
  EXPECT_EQ(pairs[0].connections_total, 6u);  // what the agent counts since it started
}

TEST(TrafficStore, AStaleAgentKeepsItsTotalsAtRateZero) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  store.Record("node1", One("source", {10, 0, 0, 0}), t0);
  store.Record("node1", One("source", {20, 0, 0, 0}), t0 + seconds(10));
  EXPECT_DOUBLE_EQ(store.Pairs(t0 + seconds(40)).at(0).connections_per_second, 1);  // 30 s old: still fresh
  auto stale = store.Pairs(t0 + seconds(41));
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].connections_per_second, 0);
  EXPECT_EQ(stale[0].connections_total, 20u);
  store.Forget("node1");
  EXPECT_TRUE(store.Pairs(t0 + seconds(41)).empty());
}

TEST(TrafficStore, AReportRightAfterAnotherUpdatesTotalsNotRates) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  store.Record("node1", One("source", {10, 0, 0, 0}), t0);
  store.Record("node1", One("source", {20, 0, 0, 0}), t0 + seconds(10));
  // A config change makes the agent report again 10 ms later: 1 more connection is not 100/s.
  store.Record("node1", One("source", {21, 0, 0, 0}), t0 + seconds(10) + milliseconds(10));
  auto pairs = store.Pairs(t0 + seconds(11));
  EXPECT_EQ(pairs.at(0).connections_total, 21u);
  EXPECT_DOUBLE_EQ(pairs.at(0).connections_per_second, 1);  // (20 - 10) / 10 s
  // The next report is rated against the last rated one, over the whole time between them.
  store.Record("node1", One("source", {41, 0, 0, 0}), t0 + seconds(20));
  EXPECT_DOUBLE_EQ(store.Pairs(t0 + seconds(20)).at(0).connections_per_second, 2.1);  // (41 - 20) / 10 s
}

TEST(TrafficStore, IgnoresWhatItCannotAttributeAndBoundsAReport) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  v1::AgentStatus s;
  Add(&s, "sideways", "frontend", Spiffe("frontend"), "backend", {5, 0, 0, 0});  // no such reporter
  for (size_t i = 0; i < TrafficStore::kMaxPairsPerReport + 50; ++i) {
    Add(&s, "source", "frontend", Spiffe("frontend"), "b" + std::to_string(i), {1, 0, 0, 0});
  }
  store.Record("node1", s, t0);
  auto pairs = store.Pairs(t0);
  EXPECT_EQ(pairs.size(), TrafficStore::kMaxPairsPerReport - 1);  // the bad entry took one of the 1000 places
  EXPECT_EQ(Find(pairs, "shop/frontend", "shop/backend", true), nullptr);
}

TEST(TrafficStore, ReadersAndReportingAgentsRunConcurrently) {
  TrafficStore store;
  Clock::time_point t0 = Clock::now();
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      store.Record("node" + std::to_string(i % 4), One("source", {static_cast<uint64_t>(i), 0, 0, 0}),
                   t0 + milliseconds(500 * i));
    }
  });
  for (int i = 0; i < 2000; ++i) EXPECT_LE(store.Pairs(t0 + milliseconds(500 * i)).size(), 1u);
  writer.join();
  EXPECT_EQ(store.Pairs(t0).at(0).connections_total, 1996u + 1997 + 1998 + 1999);  // each node's last report
}

}  // namespace
}  // namespace zm::ctrl
