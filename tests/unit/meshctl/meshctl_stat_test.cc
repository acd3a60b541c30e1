// `meshctl stat`: the per route request aggregates of two agents summed into one row per Service and route, success
// rate and window rates, latency quantiles from the merged histogram buckets, and the table/flags around them.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "tools/meshctl/cli.h"
#include "tools/meshctl/stat_views.h"

namespace zm::meshctl {
namespace {

zeromesh::v1::MeshStatus TwoAgents() {
  zeromesh::v1::MeshStatus st;
  // Bounds 1, 10, 100 ms. Agent a: 90 requests (9 failed) on the canary's rule 0, 30 in its last 10 s window;
  // agent b: 10 more on the same rule (its first report: no window) and 4 on the destination side.
  const char* text = R"pb(
    agents {
      node: "a"
      last_report {
        request_latency_bounds_ms: [ 1, 10, 100 ]
        requests {
          reporter: "source"
          source_workload: "frontend"
          source_namespace: "shop"
          destination_service: "shop/backend"
          route: "shop/canary#0"
          requests: 90
          failures: 9
          window_seconds: 10
          window_requests: 30
          window_failures: 3
          window_latency_counts: [ 10, 10, 9, 1 ]
        }
        requests {
          reporter: "source"
          source_workload: "frontend"
          source_namespace: "shop"
          destination_service: "shop/db-api"
          route: "none"
          requests: 5
          window_seconds: 10
          window_requests: 0
          window_latency_counts: [ 0, 0, 0, 0 ]
        }
      }
    }
    agents {
      node: "b"
      last_report {
        request_latency_bounds_ms: [ 1, 10, 100 ]
        requests {
          reporter: "source"
          source_workload: "admin"
          source_namespace: "ops"
          destination_service: "shop/backend"
          route: "shop/canary#0"
          requests: 10
        }
        requests {
          reporter: "destination"
          source_workload: "frontend"
          source_namespace: "shop"
          destination_service: "shop/backend"
          route: "none"
          requests: 4
          failures: 4
        }
      }
    }
  )pb";
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &st));
  return st;
}

TEST(MeshctlStat, SumsAgentsPerServiceAndRoute) {
  auto j = StatJson(TwoAgents(), "source", "");
  ASSERT_EQ(j.size(), 2u) << j.dump(2);
  const auto& canary = j[0];
  EXPECT_EQ(canary["service"], "shop/backend");
  EXPECT_EQ(canary["route"], "shop/canary#0");
  EXPECT_EQ(canary["requests"], 100u);
  EXPECT_EQ(canary["failures"], 9u);
  EXPECT_DOUBLE_EQ(canary["success_rate"].get<double>(), 0.91);
  EXPECT_DOUBLE_EQ(canary["rps"].get<double>(), 3.0);  // only agent a has a window: 30 requests in 10 s
  EXPECT_EQ(canary["sources"], nlohmann::json::array({"ops/admin", "shop/frontend"}));
  // 30 in the window: the 15th is in the 1..10 ms bucket (5 of its 10); the 29.7th past 100 ms (the last bound).
  EXPECT_DOUBLE_EQ(canary["latency_p50_ms"].get<double>(), 1 + 9 * 0.5);
  EXPECT_DOUBLE_EQ(canary["latency_p99_ms"].get<double>(), 100);

  const auto& idle = j[1];
  EXPECT_EQ(idle["service"], "shop/db-api");
  EXPECT_DOUBLE_EQ(idle["success_rate"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(idle["rps"].get<double>(), 0.0);
  EXPECT_TRUE(idle["latency_p50_ms"].is_null());  // nothing in the window: no latency rather than a made-up one
}

TEST(MeshctlStat, FiltersByReporterAndService) {
  auto dest = StatJson(TwoAgents(), "destination", "");
  ASSERT_EQ(dest.size(), 1u);
  EXPECT_EQ(dest[0]["requests"], 4u);
  EXPECT_DOUBLE_EQ(dest[0]["success_rate"].get<double>(), 0.0);
  EXPECT_TRUE(dest[0]["rps"].is_null());  // first report only
  auto one = StatJson(TwoAgents(), "source", "shop/db-api");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]["requests"], 5u);
  EXPECT_TRUE(StatJson(TwoAgents(), "source", "shop/nope").empty());
}

TEST(MeshctlStat, MismatchedBucketsAreLeftOutOfLatency) {
  auto st = TwoAgents();
  auto* rep = st.mutable_agents(0)->mutable_last_report();
  rep->mutable_requests(0)->add_window_latency_counts(5);  // five counts for four buckets: a broken report
  auto j = StatJson(st, "source", "shop/backend");
  ASSERT_EQ(j.size(), 1u);
  EXPECT_TRUE(j[0]["latency_p50_ms"].is_null());
  EXPECT_EQ(j[0]["requests"], 100u);  // the counts still add up
}

TEST(MeshctlStat, Quantiles) {
  EXPECT_EQ(HistogramQuantile(0.5, {1, 2}, {0, 0, 0}), -1);
  EXPECT_EQ(HistogramQuantile(0.5, {1, 2}, {1, 1}), -1);  // counts must have one entry past the bounds
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, {1, 2}, {0, 4, 0}), 1.5);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.99, {1, 2}, {1, 0, 99}), 2);  // overflow: the last bound
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.25, {4}, {4, 0}), 1);
}

TEST(MeshctlStat, Table) {
  auto out = RenderStat(StatJson(TwoAgents(), "source", ""));
  EXPECT_NE(out.find("SERVICE"), std::string::npos);
  EXPECT_NE(out.find("LATENCY_P99"), std::string::npos);
  EXPECT_NE(out.find("shop/canary#0"), std::string::npos);
  EXPECT_NE(out.find("91.00%"), std::string::npos);
  EXPECT_NE(out.find("5.50ms"), std::string::npos);
  EXPECT_NE(RenderStat(nlohmann::json::array()).find("no request traffic"), std::string::npos);
}

TEST(MeshctlStat, Flags) {
  auto env = [](const char*) -> const char* { return nullptr; };
  Invocation inv;
  std::string err;
  ASSERT_TRUE(ParseArgs({"stat", "shop/backend", "--reporter", "destination", "-o", "json"}, env, &inv, &err)) << err;
  EXPECT_EQ(inv.args, std::vector<std::string>{"shop/backend"});
  EXPECT_EQ(inv.flags["reporter"], "destination");
  Invocation bad;
  EXPECT_FALSE(ParseArgs({"stat", "--reporter", "client"}, env, &bad, &err));
  EXPECT_NE(err.find("--reporter"), std::string::npos);
  Invocation two;
  EXPECT_FALSE(ParseArgs({"stat", "shop/a", "shop/b"}, env, &two, &err));
  Invocation plain;
  EXPECT_FALSE(ParseArgs({"stat", "backend"}, env, &plain, &err));
  EXPECT_NE(err.find("ns/name"), std::string::npos);
}

}  // namespace
}  // namespace zm::meshctl
