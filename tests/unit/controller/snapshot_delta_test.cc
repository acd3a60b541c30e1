// Snapshot comparison by digest (Snapshot::Seal) must give exactly what comparing the encodings gives: the same
// "anything new?" verdict and the same delta pushes. Unsealed copies take the encoding path.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "controller/config/incremental_compile.h"
#include "controller/config/snapshot.h"
#include "controller/config/store.h"
#include "tests/unit/controller/shop_resources.h"

namespace zm::ctrl {
namespace {

namespace v1 = zeromesh::v1;

manifest::Located Workload(const std::string& name, const std::string& ip, const std::string& app) {
  return test::Given(test::Workload(name, ip, app));
}

manifest::Located Service(const std::string& name, const std::string& vip, const std::string& app) {
  return test::Given(test::Service(name, app, vip));
}

std::set<std::string> Keys(const google::protobuf::RepeatedPtrField<v1::Resource>& rs) {
  std::set<std::string> out;
  for (const auto& r : rs) out.insert(manifest::KeyOf(r));
  return out;
}

std::set<std::string> Removed(const v1::ConfigPush& p) {
  std::set<std::string> out;
  for (const auto& k : p.removed()) out.insert(k.ShortDebugString());
  return out;
}

std::shared_ptr<Snapshot> Unsealed(const Snapshot& s) {
  auto copy = std::make_shared<Snapshot>(s);
  copy->digests.clear();
  return copy;
}

TEST(SnapshotDelta, DigestsAgreeWithEncodings) {
  std::vector<manifest::Located> a = {Workload("web-1", "10.0.0.1", "web"), Workload("web-2", "10.0.0.2", "web"),
                                      Workload("db-1", "10.0.0.3", "db"), Service("web", "10.96.0.1", "web")};
  // b: web-2 gone (the Service's endpoints change with it), db-1 relabelled, cache-1 new, web-1 unchanged.
  std::vector<manifest::Located> b = {Workload("web-1", "10.0.0.1", "web"), Workload("db-1", "10.0.0.3", "db2"),
                                      Workload("cache-1", "10.0.0.4", "cache"), Service("web", "10.96.0.1", "web")};
  auto before = Compile(a, MeshDefaults{});
  auto after = Compile(b, MeshDefaults{});
  ASSERT_TRUE(before->Sealed());
  ASSERT_TRUE(after->Sealed());
  EXPECT_FALSE(Unsealed(*before)->Sealed());

  auto sealed = MakeDeltaPush(*before, *after, "e", "");
  auto plain = MakeDeltaPush(*Unsealed(*before), *Unsealed(*after), "e", "");
  auto mixed = MakeDeltaPush(*before, *Unsealed(*after), "e", "");
  const std::set<std::string> upserted = {"Workload/shop/db-1", "Workload/shop/cache-1", "Service/shop/web"};
  EXPECT_EQ(Keys(sealed.upserted()), upserted);
  EXPECT_EQ(Keys(plain.upserted()), upserted);
  EXPECT_EQ(Keys(mixed.upserted()), upserted);
  ASSERT_EQ(sealed.removed_size(), 1);
  EXPECT_EQ(sealed.removed(0).name(), "web-2");
  EXPECT_EQ(Removed(sealed), Removed(plain));
  EXPECT_EQ(Removed(sealed), Removed(mixed));

  // Nothing new: the same input compiles to equal snapshots, by digest and by encoding; one field differs: not.
  auto again = Compile(b, MeshDefaults{});
  EXPECT_TRUE(after->SameResources(*again));
  EXPECT_TRUE(Unsealed(*after)->SameResources(*again));
  EXPECT_EQ(MakeDeltaPush(*after, *again, "e", "").upserted_size(), 0);
  EXPECT_EQ(MakeDeltaPush(*after, *again, "e", "").removed_size(), 0);
  b[0].resource.Mutable()->mutable_workload()->set_node("node2");
  auto moved = Compile(b, MeshDefaults{});
  EXPECT_FALSE(after->SameResources(*moved));
  EXPECT_FALSE(Unsealed(*after)->SameResources(*Unsealed(*moved)));
  // The Service's endpoint names the workload's node: it changes too.
  EXPECT_EQ(Keys(MakeDeltaPush(*after, *moved, "e", "").upserted()),
            (std::set<std::string>{"Workload/shop/web-1", "Service/shop/web"}));
}

// Versions share what did not change: the history holds one copy of the mesh plus the changes.
TEST(SnapshotDelta, UnchangedResourcesAreSharedWithThePreviousVersion) {
  std::vector<manifest::Located> a = {Workload("web-1", "10.0.0.1", "web"), Workload("db-1", "10.0.0.3", "db"),
                                      Service("web", "10.96.0.1", "web")};
  auto v1s = Compile(a, MeshDefaults{});
  auto b = a;
  b[1].resource.Mutable()->mutable_workload()->set_service_account("db");
  auto v2s = Compile(b, MeshDefaults{}, v1s.get());
  EXPECT_EQ(v2s->resources.at("Workload/shop/web-1"), v1s->resources.at("Workload/shop/web-1"));  // same object
  EXPECT_EQ(v2s->resources.at("Service/shop/web"), v1s->resources.at("Service/shop/web"));
  EXPECT_NE(v2s->resources.at("Workload/shop/db-1"), v1s->resources.at("Workload/shop/db-1"));
  EXPECT_EQ(v2s->resources.at("Workload/shop/db-1")->workload().service_account(), "db");
  EXPECT_EQ(Keys(MakeDeltaPush(*v1s, *v2s, "e", "").upserted()), std::set<std::string>{"Workload/shop/db-1"});
  // Sharing never hides a change, also when the previous version was built by hand and not sealed.
  auto v3s = Compile(a, MeshDefaults{}, Unsealed(*v2s).get());
  EXPECT_EQ(v3s->resources.at("Workload/shop/db-1")->workload().service_account(), "default");
}

// The decode cache records each workload's digest once; it must be the digest of what Compile publishes.
TEST(SnapshotDelta, DecodedWorkloadDigestsMatchTheirResources) {
  std::string dir = ::testing::TempDir() + "/zm-digest-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/a.yaml") << "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: web-1\n"
                                    "  namespace: shop\n  labels:\n    app: web\nspec:\n  ip: 10.244.1.11\n"
                                    "  node: node1\n  serviceAccount: web\n";
  manifest::DecodeCache cache;
  auto result = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].reason);
  ASSERT_EQ(result.resources.size(), 1u);
  ASSERT_TRUE(result.resources[0].digest.has_value());
  EXPECT_EQ(*result.resources[0].digest, manifest::ResourceDigest(result.resources[0].resource));
  auto snap = Compile(result.resources, MeshDefaults{});
  auto plain = Unsealed(*snap);
  plain->Seal();
  EXPECT_EQ(snap->digests, plain->digests);
}

// A reload hands the compiler the decode cache's own objects and the snapshots keep them: 100,000 workloads are held
// once, not once by the cache and once more by the snapshot, and no reload copies them (shared_resource.h). What the
// compile changes (a Service's endpoints) is a copy: the cache keeps the resource as given.
TEST(SnapshotDelta, SnapshotsHoldTheDecodeCachesWorkloads) {
  std::string dir = ::testing::TempDir() + "/zm-shared-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/a.yaml") << "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: web-1\n"
                                    "  namespace: shop\n  labels:\n    app: web\nspec:\n  ip: 10.244.1.11\n"
                                    "  node: node1\n  serviceAccount: web\n---\n"
                                    "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: web, namespace: "
                                    "shop}\nspec: {vip: 10.96.0.1, ports: [{port: 80}], selector: {app: web}}\n";
  manifest::DecodeCache cache;
  IncrementalCompiler compiler;
  auto first = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  ASSERT_TRUE(first.ok()) << first.errors[0].reason;
  ASSERT_EQ(first.resources.size(), 2u);
  const v1::Resource* decoded_workload = &*first.resources[0].resource;
  const v1::Resource* decoded_service = &*first.resources[1].resource;
  auto s1 = compiler.Compile(std::move(first.resources), MeshDefaults{}, nullptr);
  EXPECT_EQ(s1->resources.at("Workload/shop/web-1").get(), decoded_workload) << "the snapshot copied the workload";
  EXPECT_NE(s1->resources.at("Service/shop/web").get(), decoded_service);
  EXPECT_EQ(s1->resources.at("Service/shop/web")->service().endpoints_size(), 1);
  EXPECT_EQ(decoded_service->service().endpoints_size(), 0) << "the compile wrote into the cache's Service";

  // A change in another file: the reload shares the unchanged workload again, the incremental compile keeps it.
  std::ofstream(dir + "/b.yaml") << "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: web-2\n"
                                    "  namespace: shop\n  labels:\n    app: web\nspec:\n  ip: 10.244.1.12\n"
                                    "  node: node2\n  serviceAccount: web\n";
  auto second = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  ASSERT_TRUE(second.ok()) << second.errors[0].reason;
  EXPECT_EQ(&*second.resources[0].resource, decoded_workload) << "the reload copied the cached workload";
  auto s2 = compiler.Compile(std::move(second.resources), MeshDefaults{}, s1.get());
  EXPECT_TRUE(compiler.last().incremental) << compiler.last().fallback;
  EXPECT_EQ(s2->resources.at("Workload/shop/web-1").get(), decoded_workload);
  EXPECT_EQ(s2->resources.at("Service/shop/web")->service().endpoints_size(), 2);
  EXPECT_EQ(decoded_service->service().endpoints_size(), 0);
  std::filesystem::remove_all(dir);
}

// Copy on write: a writer never changes what another holder sees.
TEST(SnapshotDelta, SharedResourceCopiesOnlyWhenShared) {
  manifest::SharedResource a(test::Workload("web-1", "10.0.0.1", "web"));
  const v1::Resource* before = &*a;
  a.Mutable()->mutable_workload()->set_node("node9");  // the only holder: written in place
  EXPECT_EQ(&*a, before);
  manifest::SharedResource b = a;
  auto snapshot_view = a.Share();
  b.Mutable()->mutable_workload()->set_node("node7");
  EXPECT_EQ(a->workload().node(), "node9");
  EXPECT_EQ(snapshot_view->workload().node(), "node9");
  EXPECT_EQ(b->workload().node(), "node7");
  EXPECT_FALSE(a.SameObject(b));
  manifest::SharedResource empty;
  EXPECT_FALSE(empty->has_workload());
  EXPECT_TRUE(empty.Mutable()->mutable_service() != nullptr);
  EXPECT_TRUE(empty->has_service());
}

TEST(SnapshotDelta, FromAndToEmpty) {
  auto empty = Compile({}, MeshDefaults{});  // the default MeshConfig only
  auto full = Compile({Workload("web-1", "10.0.0.1", "web"), Service("web", "10.96.0.1", "web")}, MeshDefaults{});
  EXPECT_EQ(Keys(MakeDeltaPush(*empty, *full, "e", "").upserted()),
            (std::set<std::string>{"Workload/shop/web-1", "Service/shop/web"}));
  auto back = MakeDeltaPush(*full, *empty, "e", "");
  EXPECT_EQ(back.upserted_size(), 0);
  EXPECT_EQ(back.removed_size(), 2);
}

TEST(ConfigStoreHistory, BoundedByVersionsAndByRetainedResources) {
  // Each snapshot: 2 workloads + the default MeshConfig = 3 resources. At most 7 retained: 2 versions, but never
  // fewer than the current one and the one before it.
  ConfigStore store("e", /*history=*/4, /*max_retained=*/7);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store.Publish(
        Compile({Workload("a", "10.0.0.1", std::to_string(i)), Workload("b", "10.0.0.2", "b")}, MeshDefaults{})));
  }
  EXPECT_EQ(store.Current()->version, 6u);
  EXPECT_NE(store.AtVersion(5), nullptr);
  EXPECT_EQ(store.AtVersion(4), nullptr);
  // Small snapshots: the version count bounds the history.
  ConfigStore roomy("e", /*history=*/4);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(roomy.Publish(Compile({Workload("a", "10.0.0.1", std::to_string(i))}, MeshDefaults{})));
  }
  EXPECT_NE(roomy.AtVersion(3), nullptr);
  EXPECT_EQ(roomy.AtVersion(2), nullptr);
}

}  // namespace
}  // namespace zm::ctrl
