// Config apply microbenchmarks on a 10,000-workload / 1,000-service / 200-policy push (the control-plane benchmark's
// shape): agent/control ApplyPush (full and delta), state_adapter ToMeshSnapshot, and the whole per-push work of an
// agent (ApplyPush of a delta + ToMeshSnapshot + PolicySet::Compile); service resolution on the resulting snapshot.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "agent/control/state_adapter.h"
#include "agent/policy/policy_set.h"
#include "bench/micro/mesh_fixture.h"

namespace {

using zm::agent::control::ApplyPush;
using zm::agent::control::ConfigState;
using zm::bench::MeshShape;
namespace v1 = zeromesh::v1;

const MeshShape kShape{.workloads = 10000, .services = 1000, .policies = 200, .nodes = 100, .namespaces = 10};

struct Fixture {
  v1::ConfigPush full;
  ConfigState held;
  v1::ConfigPush delta_policy;     // one new TrafficPermission
  v1::ConfigPush delta_workloads;  // 100 workloads changed (e.g. a rollout on one node)

  Fixture() {
    full = zm::bench::FullPush(kShape, 1);
    std::string error;
    if (!ApplyPush(ConfigState(), full, &held, &error)) std::abort();
    for (v1::ConfigPush* d : {&delta_policy, &delta_workloads}) {
      d->set_version(2);
      d->set_epoch("bench");
      d->set_full(false);
      d->set_base_version(1);
    }
    *delta_policy.add_upserted() = zm::bench::MakePolicy(kShape.policies, kShape);
    for (int i = 0; i < 100; i++) {
      v1::Resource r = zm::bench::MakeWorkload(i, kShape);
      (*r.mutable_workload()->mutable_labels())["version"] = "v9";
      *delta_workloads.add_upserted() = r;
    }
  }
};

const Fixture& Get() {
  static Fixture f;
  return f;
}

void BM_ApplyPushFull(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) {
    ConfigState out;
    std::string error;
    if (!ApplyPush(ConfigState(), f.full, &out, &error)) st.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out);
  }
  st.counters["resources"] = f.full.upserted_size();
  st.counters["push_bytes"] = static_cast<double>(f.full.ByteSizeLong());
}
BENCHMARK(BM_ApplyPushFull)->Unit(benchmark::kMillisecond);

void BM_ApplyPushDelta(benchmark::State& st) {
  const Fixture& f = Get();
  const v1::ConfigPush& d = st.range(0) == 0 ? f.delta_policy : f.delta_workloads;
  for (auto _ : st) {
    ConfigState out;
    std::string error;
    if (!ApplyPush(f.held, d, &out, &error)) st.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out);
  }
  st.counters["upserted"] = d.upserted_size();
}
BENCHMARK(BM_ApplyPushDelta)->Arg(0)->Arg(1)->ArgName("workloads_delta")->Unit(benchmark::kMillisecond);

void BM_ToMeshSnapshot(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) {
    std::string error;
    auto snap = zm::agent::control::ToMeshSnapshot(f.held, "node1", &error);
    if (!snap) st.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(snap);
  }
  st.counters["workloads"] = kShape.workloads;
}
BENCHMARK(BM_ToMeshSnapshot)->Unit(benchmark::kMillisecond);

// What a simulated agent in bench/controlplane.sh does for a one-policy delta before it ACKs.
void BM_AgentApplyPolicyDelta(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) {
    ConfigState out;
    std::string error;
    if (!ApplyPush(f.held, f.delta_policy, &out, &error)) st.SkipWithError(error.c_str());
    auto snap = zm::agent::control::ToMeshSnapshot(out, "node1", &error);
    auto pol = zm::agent::policy::PolicySet::Compile(out, &error);
    if (!snap || !pol) st.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(snap);
    benchmark::DoNotOptimize(pol);
  }
}
BENCHMARK(BM_AgentApplyPolicyDelta)->Unit(benchmark::kMillisecond);

// Service resolution (agent/state): a connection's original destination VIP:port -> Service -> target port and its
// endpoints, on the 1,000-service snapshot that ToMeshSnapshot builds.
void BM_ServiceResolve(benchmark::State& st) {
  const Fixture& f = Get();
  std::string error;
  auto snap = zm::agent::control::ToMeshSnapshot(f.held, "node1", &error);
  if (!snap || snap->services().empty()) {
    st.SkipWithError("the snapshot has no services");
    return;
  }
  std::vector<zm::net::IpAddr> vips;
  for (int k = 0; k < kShape.services; k++) {
    in_addr_t a = 0;
    std::string vip = "10.96." + std::to_string(k / 250) + "." + std::to_string(k % 250 + 1);
    inet_pton(AF_INET, vip.c_str(), &a);
    vips.push_back(zm::net::IpAddr::V4(a));
  }
  size_t i = 0, found = 0, endpoints = 0;
  for (auto _ : st) {
    const zm::agent::Service* svc = snap->FindService(vips[(i++ * 7919) % vips.size()]);
    if (svc != nullptr && svc->FindPort(80) != nullptr) {
      found++;
      endpoints += svc->endpoints.size();
    }
    benchmark::DoNotOptimize(svc);
  }
  st.counters["found_share"] = static_cast<double>(found) / static_cast<double>(st.iterations());
  st.counters["endpoints_avg"] = found ? static_cast<double>(endpoints) / static_cast<double>(found) : 0;
  st.counters["services"] = static_cast<double>(snap->services().size());
}
BENCHMARK(BM_ServiceResolve);

}  // namespace

BENCHMARK_MAIN();
