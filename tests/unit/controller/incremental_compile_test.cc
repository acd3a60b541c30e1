// The incremental compile must give what a full Compile of the same input gives, byte for byte (digests of every
// resource, the MeshConfig, identities per node), over random sequences of changes; and its work must follow the
// change: a TrafficPermission re-resolves no Service, a Workload only the Services that select or name it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "controller/config/incremental_compile.h"
#include "tests/unit/controller/shop_resources.h"

namespace zm::ctrl {
namespace {

namespace v1 = zeromesh::v1;

class Mesh {
 public:
  explicit Mesh(uint32_t seed) : rng_(seed) {}

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  template <typename T>
  const T& Of(const std::vector<T>& v) {
    return v[static_cast<size_t>(Pick(static_cast<int>(v.size())))];
  }

  // The input as a source would give it: shuffled; digests set (the decode cache) or not (Kubernetes), at random.
  std::vector<manifest::Located> Input() {
    std::vector<manifest::Located> out;
    for (const auto& [key, r] : resources_) {
      manifest::Located& l = out.emplace_back();
      l.resource = r;
      if (Pick(2) == 0) l.digest = manifest::ResourceDigest(r);
    }
    std::shuffle(out.begin(), out.end(), rng_);
    return out;
  }

  void Put(const v1::Resource& r) { resources_[manifest::KeyOf(r)] = r; }
  void Drop(const std::string& key) { resources_.erase(key); }
  std::vector<std::string> Keys(const std::string& kind) const {
    std::vector<std::string> out;
    for (const auto& [key, r] : resources_) {
      if (key.rfind(kind + "/", 0) == 0) out.push_back(key);
    }
    return out;
  }
  v1::Resource& At(const std::string& key) { return resources_.at(key); }

  std::string FreshIp(bool v6) {
    ++next_ip_;
    if (v6) return "fd00::" + std::to_string(next_ip_);
    return "10." + std::to_string(next_ip_ / 250) + "." + std::to_string(next_ip_ % 250) + ".1";
  }
  // An address some workload has now (or a fresh one): explicit endpoints that name workloads and ones that do not.
  std::string SomeIp() {
    auto keys = Keys("Workload");
    if (keys.empty() || Pick(3) == 0) return FreshIp(Pick(2) == 0);
    return At(Of(keys)).workload().ip();
  }

  void SetLabels(v1::Workload* w) {
    w->clear_labels();
    if (Pick(5) > 0) (*w->mutable_labels())["app"] = Of(std::vector<std::string>{"web", "db", "cache"});
    if (Pick(2) == 0) (*w->mutable_labels())["tier"] = Of(std::vector<std::string>{"fe", "be"});
  }

  void AddWorkload() {
    v1::Resource r;
    auto* w = r.mutable_workload();
    w->set_name("w" + std::to_string(++next_name_));
    w->set_namespace_(Of(namespaces_));
    w->set_service_account(Of(std::vector<std::string>{"default", "api"}));
    w->set_node("node" + std::to_string(Pick(4)));
    SetAddresses(w);
    SetLabels(w);
    Put(r);
  }
  void SetAddresses(v1::Workload* w) {
    w->clear_ips();
    switch (Pick(3)) {
      case 0:
        w->set_ip(FreshIp(false));
        break;
      case 1:
        w->set_ip(FreshIp(true));
        break;
      default:  // dual stack
        w->set_ip(FreshIp(false));
        w->add_ips(w->ip());
        w->add_ips(FreshIp(true));
    }
  }

  void AddService() {
    v1::Resource r;
    auto* s = r.mutable_service();
    s->set_name("s" + std::to_string(++next_name_));
    s->set_namespace_(Of(namespaces_));
    SetServiceSpec(s);
    Put(r);
  }
  void SetServiceSpec(v1::Service* s) {
    s->clear_vip();
    s->clear_vips();
    s->clear_selector();
    s->clear_endpoints();
    switch (Pick(4)) {
      case 0:
        s->set_vip(FreshIp(false));
        break;
      case 1:
        s->set_vip(FreshIp(true));
        break;
      case 2:
        s->set_vip(FreshIp(false));
        s->add_vips(s->vip());
        s->add_vips(FreshIp(true));
        break;
      default:
        break;  // headless: both families
    }
    if (Pick(4) > 0) (*s->mutable_selector())["app"] = Of(std::vector<std::string>{"web", "db", "cache"});
    if (Pick(3) == 0) (*s->mutable_selector())["tier"] = Of(std::vector<std::string>{"fe", "be"});
    if (Pick(3) == 0) s->add_endpoints()->set_ip(SomeIp());
  }

  void AddPermission() {
    v1::Resource r;
    auto* p = r.mutable_traffic_permission();
    p->set_name("p" + std::to_string(++next_name_));
    p->set_namespace_(Of(namespaces_));
    SetAction(p);
    Put(r);
  }
  void SetAction(v1::TrafficPermission* p) { p->set_action(Pick(2) == 0 ? v1::ALLOW : v1::DENY); }

  // A duplicate address lasts one compile (Compile keeps the last workload; the incremental one falls back).
  void Heal() {
    if (!duplicated_.empty() && resources_.count(duplicated_)) SetAddresses(At(duplicated_).mutable_workload());
    duplicated_.clear();
  }

  // One random change (none when there is nothing of the kind picked).
  void Mutate() {
    auto workloads = Keys("Workload"), services = Keys("Service"), permissions = Keys("TrafficPermission");
    switch (Pick(14)) {
      case 0:
      case 1:
        AddWorkload();
        break;
      case 2:
        if (!workloads.empty()) Drop(Of(workloads));
        break;
      case 3:
        if (!workloads.empty()) SetLabels(At(Of(workloads)).mutable_workload());
        break;
      case 4:
        if (!workloads.empty()) At(Of(workloads)).mutable_workload()->set_node("node" + std::to_string(Pick(4)));
        break;
      case 5:
        if (!workloads.empty()) SetAddresses(At(Of(workloads)).mutable_workload());
        break;
      case 6:
        AddService();
        break;
      case 7:
        if (!services.empty()) Drop(Of(services));
        break;
      case 8:
        if (!services.empty()) SetServiceSpec(At(Of(services)).mutable_service());
        break;
      case 9:
        AddPermission();
        break;
      case 10:
        if (!permissions.empty()) Drop(Of(permissions));
        break;
      case 11:
        if (!permissions.empty()) SetAction(At(Of(permissions)).mutable_traffic_permission());
        break;
      case 12:
        if (!workloads.empty()) {  // another identity on the same node, or the same one
          At(Of(workloads)).mutable_workload()->set_service_account(Of(std::vector<std::string>{"default", "api"}));
        }
        break;
      default:
        if (Pick(3) == 0) {  // rare: the MeshConfig comes or goes (a full compile)
          if (resources_.count("MeshConfig//default")) {
            Drop("MeshConfig//default");
          } else {
            v1::Resource r;
            r.mutable_mesh_config()->set_name("default");
            r.mutable_mesh_config()->set_trust_domain("example.org");
            Put(r);
          }
        } else if (workloads.size() >= 2 && Pick(2) == 0) {  // rare: two workloads claim one address
          At(workloads[0]).mutable_workload()->set_ip(At(workloads[1]).workload().ip());
          At(workloads[0]).mutable_workload()->clear_ips();
          duplicated_ = workloads[0];
        }
    }
  }

 private:
  std::mt19937 rng_;
  std::map<std::string, v1::Resource> resources_;
  std::vector<std::string> namespaces_ = {"shop", "bank"};
  int next_ip_ = 0, next_name_ = 0;
  std::string duplicated_;
};

// Equal output: the same keys with the same digests (each one the digest of the object held), the same MeshConfig
// and identities per node.
void ExpectSame(const Snapshot& inc, const Snapshot& full, int step) {
  ASSERT_TRUE(inc.Sealed()) << "step " << step;
  ASSERT_EQ(inc.resources.size(), full.resources.size()) << "step " << step;
  size_t i = 0;
  for (auto a = inc.resources.begin(), b = full.resources.begin(); a != inc.resources.end(); ++a, ++b, ++i) {
    ASSERT_EQ(a->first, b->first) << "step " << step;
    ASSERT_EQ(inc.digests[i], full.digests[i])
        << "step " << step << " " << a->first << "\nincremental " << a->second->ShortDebugString() << "\nfull "
        << b->second->ShortDebugString();
    ASSERT_EQ(manifest::ResourceDigest(*a->second), inc.digests[i]) << "step " << step << " " << a->first;
  }
  EXPECT_EQ(inc.mesh.SerializeAsString(), full.mesh.SerializeAsString()) << "step " << step;
  EXPECT_EQ(inc.identities_by_node, full.identities_by_node) << "step " << step;
}

TEST(IncrementalCompile, RandomChangesEqualFullCompile) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Mesh mesh(seed);
    for (int i = 0; i < 30; ++i) mesh.AddWorkload();
    for (int i = 0; i < 8; ++i) mesh.AddService();
    for (int i = 0; i < 5; ++i) mesh.AddPermission();
    IncrementalCompiler compiler;
    std::shared_ptr<Snapshot> inc, full;
    int incremental = 0;
    std::map<std::string, int> fallbacks;
    const int steps = 150;
    for (int step = 0; step < steps; ++step) {
      if (step > 0) {
        mesh.Heal();
        int n = 1 + mesh.Pick(3);
        for (int k = 0; k < n; ++k) mesh.Mutate();
      }
      auto input = mesh.Input();
      // Now and then the store holds a copy of the last result (a CA change republishes it): still incremental.
      std::shared_ptr<Snapshot> previous = inc && mesh.Pick(8) == 0 ? std::make_shared<Snapshot>(*inc) : inc;
      full = Compile(input, MeshDefaults{}, full.get());
      inc = compiler.Compile(std::move(input), MeshDefaults{}, previous.get());
      incremental += compiler.last().incremental;
      if (!compiler.last().incremental) ++fallbacks[compiler.last().fallback];
      ASSERT_NO_FATAL_FAILURE(ExpectSame(*inc, *full, step));
      // Unchanged resources stay the previous version's objects, as with Compile(previous).
      if (previous) {
        for (const auto& [key, r] : inc->resources) {
          auto it = previous->resources.find(key);
          if (it != previous->resources.end() &&
              manifest::ResourceDigest(*it->second) == manifest::ResourceDigest(*r)) {
            EXPECT_EQ(it->second, r) << key;
          }
        }
      }
    }
    // The rare MeshConfig and duplicate-address steps fall back; the rest must not.
    EXPECT_GT(incremental, steps * 2 / 3) << ::testing::PrintToString(fallbacks);
  }
}

using test::Given;
using test::Service;
using test::Workload;

v1::Resource Permission(const std::string& name, v1::Action action) {
  v1::Resource r;
  r.mutable_traffic_permission()->set_name(name);
  r.mutable_traffic_permission()->set_namespace_("shop");
  r.mutable_traffic_permission()->set_action(action);
  return r;
}

class IncrementalWork : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 100; ++i) {
      mesh_.push_back(Workload("w" + std::to_string(i), "10.0.0." + std::to_string(i), "app" + std::to_string(i % 10)));
    }
    for (int i = 0; i < 10; ++i) mesh_.push_back(Service("s" + std::to_string(i), "app" + std::to_string(i)));
    mesh_.push_back(Permission("p", v1::ALLOW));
    Recompile();
    ASSERT_FALSE(compiler_.last().incremental);
    EXPECT_EQ(compiler_.last().fallback, "no previous compile");
  }
  void Recompile() {
    std::vector<manifest::Located> in;
    for (const auto& r : mesh_) in.push_back(Given(r));
    snap_ = compiler_.Compile(std::move(in), MeshDefaults{}, snap_.get());
  }
  std::vector<v1::Resource> mesh_;
  IncrementalCompiler compiler_;
  std::shared_ptr<Snapshot> snap_;
};

TEST_F(IncrementalWork, PermissionChangeResolvesNoService) {
  mesh_.back() = Permission("p", v1::DENY);
  Recompile();
  EXPECT_TRUE(compiler_.last().incremental) << compiler_.last().fallback;
  EXPECT_EQ(compiler_.last().changed, 1u);
  EXPECT_EQ(compiler_.last().services_resolved, 0u);
  EXPECT_EQ(snap_->resources.at("TrafficPermission/shop/p")->traffic_permission().action(), v1::DENY);
}

TEST_F(IncrementalWork, RelabelledWorkloadResolvesTheServicesOfItsOldAndNewLabels) {
  mesh_[3] = Workload("w3", "10.0.0.3", "app7");  // from app3 (s3) to app7 (s7)
  Recompile();
  EXPECT_TRUE(compiler_.last().incremental) << compiler_.last().fallback;
  EXPECT_EQ(compiler_.last().services_resolved, 2u);
  EXPECT_EQ(snap_->resources.at("Service/shop/s3")->service().endpoints_size(), 9);
  EXPECT_EQ(snap_->resources.at("Service/shop/s7")->service().endpoints_size(), 11);
}

TEST_F(IncrementalWork, ServiceChangeResolvesOnlyItself) {
  mesh_[100] = Service("s0", "app1");
  Recompile();
  EXPECT_TRUE(compiler_.last().incremental) << compiler_.last().fallback;
  EXPECT_EQ(compiler_.last().services_resolved, 1u);
  EXPECT_EQ(snap_->resources.at("Service/shop/s0")->service().endpoints(0).workload(), "shop/w1");
}

TEST_F(IncrementalWork, FallsBackWhenTheLastStateCannotServe) {
  v1::Resource mc;
  mc.mutable_mesh_config()->set_name("default");
  mc.mutable_mesh_config()->set_trust_domain("example.org");
  mesh_.push_back(mc);
  Recompile();
  EXPECT_FALSE(compiler_.last().incremental);
  EXPECT_EQ(compiler_.last().fallback, "the MeshConfig changed");
  EXPECT_EQ(snap_->mesh.trust_domain(), "example.org");

  // A previous version this compiler did not produce (another source published meanwhile).
  std::vector<manifest::Located> in;
  for (const auto& r : mesh_) in.push_back(Given(r));
  auto other = Compile(in, MeshDefaults{});
  snap_ = compiler_.Compile(std::move(in), MeshDefaults{}, other.get());
  EXPECT_FALSE(compiler_.last().incremental);
  EXPECT_EQ(compiler_.last().fallback, "the previous version is not the last compiled one");

  MeshDefaults longer;
  longer.cert_ttl_seconds = 3600;
  in.clear();
  for (const auto& r : mesh_) in.push_back(Given(r));
  snap_ = compiler_.Compile(std::move(in), longer, snap_.get());
  EXPECT_EQ(compiler_.last().fallback, "the defaults changed");
}

}  // namespace
}  // namespace zm::ctrl
