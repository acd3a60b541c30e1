// Controller-side costs of one config change at the control-plane benchmark's scale (10,000 workloads, 1,000
// services, 200 policies): decoding the manifests (YAML), compiling the snapshot, the publish-time comparison, and
// the pushes the config stream builds for each connected agent (full on connect, delta per change).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/micro/mesh_fixture.h"
#include "controller/config/snapshot.h"
#include "controller/manifest/manifest.h"

namespace {

namespace v1 = zeromesh::v1;
using zm::bench::MeshShape;

const MeshShape kShape{.workloads = 10000, .services = 1000, .policies = 200, .nodes = 100, .namespaces = 10};

// The Workload manifests of one node (100 documents), as zm-agent-loadgen generate writes them.
std::string NodeWorkloadsYaml(int node) {
  std::string out;
  int per_node = kShape.workloads / kShape.nodes;
  for (int i = node * per_node; i < (node + 1) * per_node; i++) {
    v1::Workload w = zm::bench::MakeWorkload(i, kShape).workload();
    out += "---\napiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: " + w.name() +
           "\n  namespace: " + w.namespace_() + "\n  labels:\n    app: " + w.labels().at("app") +
           "\n    version: " + w.labels().at("version") + "\nspec:\n  serviceAccount: " + w.service_account() +
           "\n  node: " + w.node() + "\n  ip: " + w.ip() + "\n  enrolled: true\n";
  }
  return out;
}

std::vector<zm::manifest::Located> Located(int extra_policies) {
  std::vector<zm::manifest::Located> out;
  v1::ConfigPush all = zm::bench::FullPush(kShape);
  for (const auto& r : all.upserted()) {
    zm::manifest::Located l;
    l.resource = r;
    if (l.resource->has_service())
      l.resource.Mutable()->mutable_service()->clear_endpoints();  // the controller computes them
    l.file = "bench.yaml";
    out.push_back(std::move(l));
  }
  for (int p = 0; p < extra_policies; p++) {
    zm::manifest::Located l;
    l.resource = zm::bench::MakePolicy(kShape.policies + p, kShape);
    l.file = "bench-change.yaml";
    out.push_back(std::move(l));
  }
  return out;
}

struct Fixture {
  std::shared_ptr<zm::ctrl::Snapshot> before, after;  // after = before + one TrafficPermission
  Fixture() {
    zm::ctrl::MeshDefaults defaults;
    before = zm::ctrl::Compile(Located(0), defaults);
    after = zm::ctrl::Compile(Located(1), defaults);
    before->version = 1;
    after->version = 2;
  }
};

const Fixture& Get() {
  static Fixture f;
  return f;
}

// Decoding 1/100 of the workload manifests (one node's file); a reload decodes all 100 of them plus the rest.
void BM_DecodeWorkloadYaml100(benchmark::State& st) {
  std::string text = NodeWorkloadsYaml(0);
  for (auto _ : st) {
    zm::manifest::Result r;
    zm::manifest::DecodeText(text, "workloads-node1.yaml", zm::manifest::Limits{}, &r);
    if (!r.ok()) st.SkipWithError(r.errors[0].reason.c_str());
    benchmark::DoNotOptimize(r);
  }
  st.counters["documents"] = kShape.workloads / kShape.nodes;
}
BENCHMARK(BM_DecodeWorkloadYaml100)->Unit(benchmark::kMillisecond);

void BM_SnapshotCompile(benchmark::State& st) {
  auto located = Located(0);
  zm::ctrl::MeshDefaults defaults;
  for (auto _ : st) benchmark::DoNotOptimize(zm::ctrl::Compile(located, defaults));
  st.counters["resources"] = static_cast<double>(located.size());
}
BENCHMARK(BM_SnapshotCompile)->Unit(benchmark::kMillisecond);

// ConfigStore::Publish compares the new snapshot with the current one.
void BM_SameResources(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) benchmark::DoNotOptimize(f.before->SameResources(*f.after));
}
BENCHMARK(BM_SameResources)->Unit(benchmark::kMillisecond);

// Built once per connecting agent.
void BM_MakeFullPush(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) benchmark::DoNotOptimize(zm::ctrl::MakeFullPush(*f.after, "bench", ""));
  st.counters["push_bytes"] = static_cast<double>(zm::ctrl::MakeFullPush(*f.after, "bench", "").ByteSizeLong());
}
BENCHMARK(BM_MakeFullPush)->Unit(benchmark::kMillisecond);

// Built once per connected agent for every change: with 100 agents, 100 times per change.
void BM_MakeDeltaPush(benchmark::State& st) {
  const Fixture& f = Get();
  for (auto _ : st) {
    auto p = zm::ctrl::MakeDeltaPush(*f.before, *f.after, "bench", "");
    if (p.upserted_size() != 1) st.SkipWithError("expected a one-resource delta");
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_MakeDeltaPush)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
