// L4 policy engine microbenchmarks: PolicySet::Evaluate on a realistic set (1,000 workloads, 200 TrafficPermissions)
// and PolicySet::Compile of that set.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "agent/control/state_adapter.h"
#include "agent/policy/policy_set.h"
#include "bench/micro/mesh_fixture.h"

namespace {

using zm::agent::control::ApplyPush;
using zm::agent::control::ConfigState;
using zm::agent::policy::PolicySet;
using zm::bench::MeshShape;

struct Fixture {
  ConfigState state;
  std::shared_ptr<const zm::agent::MeshSnapshot> snap;
  std::shared_ptr<const PolicySet> policies;
  std::vector<zm::tls::SpiffeId> ids;
  struct Req {
    const zm::tls::SpiffeId* source;
    zm::net::IpAddr source_ip;
    const zm::agent::Workload* dest;
    uint16_t port;
  };
  std::vector<Req> reqs;

  explicit Fixture(const MeshShape& s) {
    std::string error;
    if (!ApplyPush(ConfigState(), zm::bench::FullPush(s), &state, &error)) std::abort();
    snap = zm::agent::control::ToMeshSnapshot(state, "node1", &error);
    policies = PolicySet::Compile(state, &error);
    if (!snap || !policies) {
      std::fprintf(stderr, "fixture: %s\n", error.c_str());
      std::abort();
    }
    std::mt19937 rng(42);
    for (int svc = 0; svc < s.services; svc++)
      ids.push_back({"cluster.local", zm::bench::Ns(svc, s), "sa-" + std::to_string(svc)});
    std::vector<const zm::agent::Workload*> dests;
    for (const auto& w : snap->workloads()) dests.push_back(&w);
    std::sort(dests.begin(), dests.end(), [](auto* a, auto* b) { return a->name < b->name; });
    // A mix: 3/4 mTLS from a random identity (some match an ALLOW, most hit the allow-list default deny of the
    // protected services or the mesh default), 1/4 plaintext from a random IP; 3/4 to port 8080, 1/4 to 9090.
    for (int i = 0; i < 4096; i++) {
      Req r{};
      r.dest = dests[rng() % dests.size()];
      r.port = rng() % 4 == 0 ? 9090 : 8080;
      if (rng() % 4 == 0) {
        r.source = nullptr;
        r.source_ip =
            zm::net::IpAddr::V4(htonl(0xC0A80000u | (rng() % 0xffff)));  // 192.168.x.y (some DENY ipBlocks match)
      } else {
        r.source = &ids[rng() % ids.size()];
        r.source_ip = zm::net::IpAddr::V4(htonl(0x0A640000u | (rng() % 0xffff)));
      }
      reqs.push_back(r);
    }
  }
};

const Fixture& Get() {
  static Fixture f(MeshShape{.workloads = 1000, .services = 100, .policies = 200, .nodes = 10, .namespaces = 10});
  return f;
}

void BM_PolicyEvaluate(benchmark::State& st) {
  const Fixture& f = Get();
  size_t i = 0, allowed = 0;
  for (auto _ : st) {
    const auto& r = f.reqs[i++ & 4095];
    zm::proxy::AuthzRequest req;
    req.source = r.source;
    req.source_ip = r.source_ip;
    req.destination = r.dest;
    req.port = r.port;
    auto d = f.policies->Evaluate(req);
    allowed += d.allow;
    benchmark::DoNotOptimize(d);
  }
  st.counters["allowed_share"] = benchmark::Counter(static_cast<double>(allowed) / static_cast<double>(st.iterations()),
                                                    benchmark::Counter::kAvgThreads);
  st.counters["policies"] =
      benchmark::Counter(static_cast<double>(f.policies->policy_count()), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_PolicyEvaluate);

// Several worker threads evaluating against the same immutable set.
BENCHMARK(BM_PolicyEvaluate)->Threads(2)->UseRealTime();

void BM_PolicyCompile(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) {
    std::string error;
    auto p = PolicySet::Compile(f.state, &error);
    benchmark::DoNotOptimize(p);
  }
  st.counters["resources"] = static_cast<double>(f.state.resources.size());
}
BENCHMARK(BM_PolicyCompile)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
