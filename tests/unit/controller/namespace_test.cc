// Namespaces deciding enrollment and mode for their workloads (controller/manifest/namespaces.h): the Namespace kind of
// universal mode, resolution after every file is read, delta pushes when only a Namespace changes, and the same rules
// in Kubernetes mode (namespace and pod labels).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "controller/config/snapshot.h"
#include "controller/k8s/translate.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/namespaces.h"
#include "tests/unit/controller/test_env.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;
using nlohmann::json;

manifest::Result Decode(const std::string& text) {
  manifest::Result r;
  manifest::DecodeText(text, "m.yaml", manifest::Limits{}, &r);
  manifest::CheckSet(&r);
  manifest::ApplyNamespaces(&r);
  return r;
}

std::string Errors(const manifest::Result& r) {
  std::string all;
  for (const auto& e : r.errors) all += e.file + ":" + std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

void ExpectError(const manifest::Result& r, int line, const std::string& needle) {
  ASSERT_EQ(r.errors.size(), 1u) << Errors(r);
  EXPECT_EQ(r.errors[0].file, "m.yaml");
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].reason;
  EXPECT_NE(r.errors[0].reason.find(needle), std::string::npos) << r.errors[0].reason;
}

std::string NamespaceYaml(const std::string& name, const std::string& labels_yaml) {
  return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name +
         (labels_yaml.empty() ? "" : "\n  labels:\n" + labels_yaml) + "\n";
}

// A workload of `ns`; `spec_extra` adds spec lines (enrolled / mode), none means both are left to the Namespace.
std::string Workload(const std::string& name, const std::string& ns, const std::string& ip,
                     const std::string& spec_extra = "") {
  return "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
         "\nspec:\n  node: node1\n  ip: " + ip + "\n" + spec_extra;
}

std::map<std::string, v1::Workload> Workloads(const std::vector<manifest::Located>& rs) {
  std::map<std::string, v1::Workload> out;
  for (const auto& l : rs) {
    if (l.resource->has_workload())
      out[l.resource->workload().namespace_() + "/" + l.resource->workload().name()] = l.resource->workload();
  }
  return out;
}

// ---- universal mode: the Namespace kind ---------------------------------------------------------------------------

TEST(NamespaceManifest, DecodesToSettingsNotToAMeshResource) {
  auto r =
      Decode(NamespaceYaml("shop", "    zeromesh.io/mesh: enabled\n    zeromesh.io/mode: STRICT\n    team: a") +
             "---\n" + NamespaceYaml("ops", "    zeromesh.io/mesh: disabled") + "---\n" + NamespaceYaml("plain", ""));
  ASSERT_TRUE(r.ok()) << Errors(r);
  EXPECT_TRUE(r.resources.empty());  // nothing for agents
  ASSERT_EQ(r.namespaces.size(), 3u);
  EXPECT_EQ(r.namespaces[0].name, "shop");
  EXPECT_EQ(r.namespaces[0].enrolled, true);
  EXPECT_EQ(r.namespaces[0].mode, v1::STRICT);
  EXPECT_EQ(r.namespaces[0].line, 1);
  EXPECT_EQ(r.namespaces[1].enrolled, false);
  EXPECT_EQ(r.namespaces[1].mode, v1::MODE_UNSPECIFIED);
  EXPECT_FALSE(r.namespaces[2].enrolled.has_value());
  EXPECT_EQ(r.namespaces[2].line, 17);
}

TEST(NamespaceManifest, BadValuesAndShapesAreErrorsWithTheirLine) {
  ExpectError(Decode(NamespaceYaml("shop", "    zeromesh.io/mesh: yes-please")), 6,
              "label 'zeromesh.io/mesh' must be enabled or disabled, not 'yes-please'");
  ExpectError(Decode(NamespaceYaml("shop", "    zeromesh.io/mode: strict")), 6,
              "label 'zeromesh.io/mode' must be STRICT or PERMISSIVE, not 'strict'");
  ExpectError(Decode(NamespaceYaml("shop", "") + "spec: {finalizers: [kubernetes]}\n"), 5, "unknown field '.spec'");
  ExpectError(Decode("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  namespace: x\n"), 5,
              "unknown field 'metadata.namespace'");
  ExpectError(Decode("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations: {a: b}\n"), 5,
              "unknown field 'metadata.annotations'");
  ExpectError(Decode("apiVersion: zeromesh.io/v1alpha1\nkind: Namespace\nmetadata: {name: shop}\n"), 1,
              "unsupported apiVersion 'zeromesh.io/v1alpha1' for kind Namespace (expected v1)");
  ExpectError(Decode("apiVersion: v1\nkind: Namespace\nmetadata: {name: Shop.Example}\n"), 3, "'metadata.name'");
  ExpectError(Decode("apiVersion: v1\nkind: Namespace\n"), 1, "missing required field 'metadata'");
  ExpectError(Decode("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n"), 3,
              "missing required field 'metadata.name'");
  ExpectError(Decode("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: [a]}\n"), 3, "labels");
  auto dup = Decode(NamespaceYaml("shop", "") + "---\n" + NamespaceYaml("shop", "    zeromesh.io/mesh: enabled"));
  ExpectError(dup, 6, "duplicate name: Namespace//shop is already defined at m.yaml:1");
}

// ---- universal mode: resolution -----------------------------------------------------------------------------------

TEST(NamespaceResolution, TheWorkloadsOwnSettingWinsThenTheNamespaceThenEnrolled) {
  auto r = Decode(Workload("omitted", "shop", "10.0.0.1") + "---\n" +
                  Workload("out", "shop", "10.0.0.2", "  enrolled: false\n") + "---\n" +
                  Workload("in-permissive", "ops", "10.0.0.3", "  enrolled: true\n  mode: PERMISSIVE\n") + "---\n" +
                  Workload("no-namespace", "nowhere", "10.0.0.4") + "---\n" +
                  Workload("unlabelled", "plain", "10.0.0.5", "  mode: STRICT\n") + "---\n" +
                  NamespaceYaml("shop", "    zeromesh.io/mesh: enabled\n    zeromesh.io/mode: STRICT") + "---\n" +
                  NamespaceYaml("ops", "    zeromesh.io/mesh: disabled\n    zeromesh.io/mode: STRICT") + "---\n" +
                  NamespaceYaml("plain", "    team: a"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  auto w = Workloads(r.resources);
  EXPECT_TRUE(w["shop/omitted"].enrolled());
  EXPECT_EQ(w["shop/omitted"].mode(), v1::STRICT);
  EXPECT_FALSE(w["shop/out"].enrolled());  // its own spec.enrolled
  EXPECT_EQ(w["shop/out"].mode(), v1::STRICT);
  EXPECT_TRUE(w["ops/in-permissive"].enrolled());
  EXPECT_EQ(w["ops/in-permissive"].mode(), v1::PERMISSIVE);
  // No Namespace object, or one without the labels: as before Namespaces existed.
  EXPECT_TRUE(w["nowhere/no-namespace"].enrolled());
  EXPECT_EQ(w["nowhere/no-namespace"].mode(), v1::MODE_UNSPECIFIED);
  EXPECT_TRUE(w["plain/unlabelled"].enrolled());
  EXPECT_EQ(w["plain/unlabelled"].mode(), v1::STRICT);
}

TEST(NamespaceResolution, DisabledNamespaceLeavesOmittedWorkloadsOut) {
  auto r =
      Decode(Workload("a", "shop", "10.0.0.1") + "---\n" + NamespaceYaml("shop", "    zeromesh.io/mesh: disabled"));
  ASSERT_TRUE(r.ok()) << Errors(r);
  EXPECT_FALSE(Workloads(r.resources)["shop/a"].enrolled());
  // Resolving again (say with the same set) gives the same answer: only inherited fields are rewritten.
  manifest::ApplyNamespaces(&r);
  EXPECT_FALSE(Workloads(r.resources)["shop/a"].enrolled());
  r.namespaces.clear();
  manifest::ApplyNamespaces(&r);
  EXPECT_TRUE(Workloads(r.resources)["shop/a"].enrolled());
}

// A Namespace in one file decides for workloads in files read before and after it, cached or not; every digest is
// the digest of the resource as resolved.
TEST(NamespaceResolution, AcrossFilesWithAndWithoutTheDecodeCache) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/a-workloads.yaml", Workload("a", "shop", "10.0.0.1") + "---\n" + Workload("b", "ops", "10.0.0.2"));
  WriteFile(dir + "/m-namespaces.yaml", NamespaceYaml("shop", "    zeromesh.io/mesh: disabled") + "---\n" +
                                            NamespaceYaml("ops", "    zeromesh.io/mode: PERMISSIVE"));
  WriteFile(dir + "/z-workloads.yaml", Workload("c", "shop", "10.0.0.3"));
  manifest::DecodeCache cache;
  for (manifest::DecodeCache* c : {static_cast<manifest::DecodeCache*>(nullptr), &cache, &cache}) {
    auto r = manifest::LoadDir(dir, manifest::Limits{}, c);
    ASSERT_TRUE(r.ok()) << Errors(r);
    auto w = Workloads(r.resources);
    EXPECT_FALSE(w["shop/a"].enrolled());
    EXPECT_FALSE(w["shop/c"].enrolled());
    EXPECT_TRUE(w["ops/b"].enrolled());
    EXPECT_EQ(w["ops/b"].mode(), v1::PERMISSIVE);
    for (const auto& l : r.resources) {
      if (l.digest) {
        EXPECT_EQ(*l.digest, manifest::ResourceDigest(l.resource)) << manifest::KeyOf(l.resource);
      }
    }
  }
  RemoveTree(dir);
}

// ---- universal mode: delta pushes when only a Namespace changes ----------------------------------------------------

std::set<std::string> Upserted(const ctrl::Snapshot& from, const ctrl::Snapshot& to) {
  std::set<std::string> out;
  auto p = ctrl::MakeDeltaPush(from, to, "e", "");
  for (const auto& r : p.upserted()) out.insert(manifest::KeyOf(r));
  EXPECT_EQ(p.removed_size(), 0);
  return out;
}

// Digests as Compile recorded them must equal the digests of what it published (a stale memoised digest would hide
// a change from every delta).
void ExpectDigestsTrue(const ctrl::Snapshot& s) {
  size_t i = 0;
  for (const auto& [key, r] : s.resources) EXPECT_EQ(s.digests[i++], manifest::ResourceDigest(*r)) << key;
}

TEST(NamespaceDelta, ALabelChangeUpsertsExactlyTheWorkloadsItDecidesFor) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/shop.yaml",
            Workload("inherits", "shop", "10.0.0.1") + "---\n" +
                Workload("own-enrolled", "shop", "10.0.0.2", "  enrolled: true\n") + "---\n" +
                Workload("own-both", "shop", "10.0.0.3", "  enrolled: false\n  mode: PERMISSIVE\n") + "---\n" +
                "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                "spec: {vip: 10.96.0.1, ports: [{port: 80}], selector: {app: web}}\n");
  WriteFile(dir + "/ops.yaml", Workload("other", "ops", "10.0.0.4"));
  WriteFile(dir + "/ns.yaml", NamespaceYaml("shop", "    zeromesh.io/mesh: disabled"));
  manifest::DecodeCache cache;
  auto load = [&](const ctrl::Snapshot* previous) {
    auto r = manifest::LoadDir(dir, manifest::Limits{}, &cache);
    EXPECT_TRUE(r.ok()) << Errors(r);
    auto s = ctrl::Compile(std::move(r.resources), ctrl::MeshDefaults{}, previous);
    ExpectDigestsTrue(*s);
    return s;
  };
  auto s1 = load(nullptr);
  EXPECT_FALSE(s1->resources.at("Workload/shop/inherits")->workload().enrolled());

  // enabled: only the workload that inherits enrollment changes.
  WriteFile(dir + "/ns.yaml", NamespaceYaml("shop", "    zeromesh.io/mesh: enabled"));
  auto s2 = load(s1.get());
  EXPECT_EQ(Upserted(*s1, *s2), std::set<std::string>{"Workload/shop/inherits"});
  EXPECT_TRUE(s2->resources.at("Workload/shop/inherits")->workload().enrolled());
  EXPECT_EQ(s2->resources.at("Workload/ops/other"), s1->resources.at("Workload/ops/other"));  // shared, not copied

  // STRICT: the two that inherit their mode change; the one that sets both does not.
  WriteFile(dir + "/ns.yaml", NamespaceYaml("shop", "    zeromesh.io/mesh: enabled\n    zeromesh.io/mode: STRICT"));
  auto s3 = load(s2.get());
  EXPECT_EQ(Upserted(*s2, *s3), (std::set<std::string>{"Workload/shop/inherits", "Workload/shop/own-enrolled"}));
  EXPECT_EQ(s3->resources.at("Workload/shop/own-enrolled")->workload().mode(), v1::STRICT);
  EXPECT_EQ(s3->resources.at("Workload/shop/own-both")->workload().mode(), v1::PERMISSIVE);

  // A bad value rejects the set: the caller keeps the last good snapshot.
  WriteFile(dir + "/ns.yaml", NamespaceYaml("shop", "    zeromesh.io/mode: Strict"));
  auto bad = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  ASSERT_EQ(bad.errors.size(), 1u) << Errors(bad);
  EXPECT_EQ(bad.errors[0].file, dir + "/ns.yaml");
  EXPECT_EQ(bad.errors[0].line, 6);

  // Back to disabled, then STRICT again: remembered digests must follow each resolution.
  WriteFile(dir + "/ns.yaml", NamespaceYaml("shop", "    zeromesh.io/mesh: disabled"));
  auto s4 = load(s3.get());
  EXPECT_EQ(Upserted(*s3, *s4), (std::set<std::string>{"Workload/shop/inherits", "Workload/shop/own-enrolled"}));
  EXPECT_TRUE(s4->SameResources(*s1));
  WriteFile(dir + "/ns.yaml", NamespaceYaml("shop", "    zeromesh.io/mesh: enabled\n    zeromesh.io/mode: STRICT"));
  auto s5 = load(s4.get());
  EXPECT_TRUE(s5->SameResources(*s3));

  // The Namespace file removed: the workload that inherits is enrolled again (the default), mode unspecified.
  RemoveTree(dir + "/ns.yaml");
  auto s6 = load(s5.get());
  EXPECT_EQ(Upserted(*s5, *s6), (std::set<std::string>{"Workload/shop/inherits", "Workload/shop/own-enrolled"}));
  EXPECT_TRUE(s6->resources.at("Workload/shop/inherits")->workload().enrolled());
  EXPECT_EQ(s6->resources.at("Workload/shop/inherits")->workload().mode(), v1::MODE_UNSPECIFIED);
  RemoveTree(dir);
}

// ---- Kubernetes mode: the same rules from namespace and pod labels ------------------------------------------------

json Pod(const std::string& ns, const std::string& name, const std::string& ip, json labels = json::object()) {
  return {{"metadata", {{"namespace", ns}, {"name", name}, {"labels", labels}}},
          {"spec", {{"nodeName", "n1"}}},
          {"status", {{"phase", "Running"}, {"podIP", ip}}}};
}

json Ns(const std::string& name, json labels, const std::string& uid = "u1") {
  return {{"metadata", {{"name", name}, {"uid", uid}, {"labels", labels}}}};
}

std::map<std::string, v1::Workload> Translated(const k8s::Translation& t) {
  return Workloads(t.resources);
}

TEST(NamespaceKubernetes, PodLabelsWinThenTheNamespaceLabels) {
  k8s::Objects o;
  o.namespaces["/shop"] = Ns("shop", {{"zeromesh.io/mesh", "enabled"}, {"zeromesh.io/mode", "STRICT"}});
  o.namespaces["/ops"] = Ns("ops", {{"zeromesh.io/mode", "PERMISSIVE"}});
  o.pods["shop/a"] = Pod("shop", "a", "10.0.0.1");
  o.pods["shop/b"] = Pod("shop", "b", "10.0.0.2", {{"zeromesh.io/mode", "PERMISSIVE"}});
  o.pods["shop/c"] = Pod("shop", "c", "10.0.0.3", {{"zeromesh.io/mesh", "disabled"}});
  o.pods["ops/d"] = Pod("ops", "d", "10.0.0.4");
  o.pods["ops/e"] = Pod("ops", "e", "10.0.0.5", {{"zeromesh.io/mesh", "enabled"}});
  o.pods["gone/f"] = Pod("gone", "f", "10.0.0.6", {{"zeromesh.io/mode", "STRICT"}});
  auto t = k8s::Translate(o, {});
  EXPECT_TRUE(t.errors.empty());
  auto w = Translated(t);
  EXPECT_TRUE(w["shop/a"].enrolled());
  EXPECT_EQ(w["shop/a"].mode(), v1::STRICT);
  EXPECT_TRUE(w["shop/b"].enrolled());
  EXPECT_EQ(w["shop/b"].mode(), v1::PERMISSIVE);
  EXPECT_FALSE(w["shop/c"].enrolled());
  EXPECT_EQ(w["shop/c"].mode(), v1::STRICT);
  EXPECT_FALSE(w["ops/d"].enrolled());  // Kubernetes' default: out unless enabled
  EXPECT_EQ(w["ops/d"].mode(), v1::PERMISSIVE);
  EXPECT_TRUE(w["ops/e"].enrolled());
  EXPECT_EQ(w["ops/e"].mode(), v1::PERMISSIVE);
  EXPECT_FALSE(w["gone/f"].enrolled());  // no Namespace object
  EXPECT_EQ(w["gone/f"].mode(), v1::STRICT);
  EXPECT_EQ(t.enrolled, 3u);  // a, b, e
}

TEST(NamespaceKubernetes, BadModeLabelsAreReportedAndTheLastAcceptedModeStays) {
  k8s::Objects o;
  o.namespaces["/shop"] = Ns("shop", {{"zeromesh.io/mesh", "enabled"}, {"zeromesh.io/mode", "PERMISSIVE"}});
  o.pods["shop/a"] = Pod("shop", "a", "10.0.0.1");
  o.pods["shop/b"] = Pod("shop", "b", "10.0.0.2", {{"zeromesh.io/mode", "loose"}});
  auto t1 = k8s::Translate(o, {});
  ASSERT_EQ(t1.errors.size(), 1u);
  EXPECT_EQ(t1.errors[0].file, "Pod/shop/b");
  EXPECT_NE(t1.errors[0].reason.find("must be STRICT or PERMISSIVE, not 'loose'"), std::string::npos);
  EXPECT_EQ(Translated(t1)["shop/b"].mode(), v1::PERMISSIVE);  // the pod's bad label ignored: the namespace's

  // The namespace's label turns bad: the mode it was last accepted with stays, and the error says so.
  o.pods.erase("shop/b");
  o.namespaces["/shop"] = Ns("shop", {{"zeromesh.io/mesh", "enabled"}, {"zeromesh.io/mode", "strict"}});
  o.last_good = &t1.accepted;
  auto t2 = k8s::Translate(o, {});
  ASSERT_EQ(t2.errors.size(), 1u);
  EXPECT_EQ(t2.errors[0].file, "Namespace//shop");
  EXPECT_NE(t2.errors[0].reason.find("the last accepted mode (PERMISSIVE) stays"), std::string::npos)
      << t2.errors[0].reason;
  EXPECT_EQ(Translated(t2)["shop/a"].mode(), v1::PERMISSIVE);
  // ... and keeps staying on later passes.
  o.last_good = &t2.accepted;
  EXPECT_EQ(Translated(k8s::Translate(o, {}))["shop/a"].mode(), v1::PERMISSIVE);

  // A re-created namespace (another uid) starts afresh: the bad label is ignored, the MeshConfig default applies.
  o.namespaces["/shop"] = Ns("shop", {{"zeromesh.io/mesh", "enabled"}, {"zeromesh.io/mode", "strict"}}, "u2");
  auto t3 = k8s::Translate(o, {});
  ASSERT_EQ(t3.errors.size(), 1u);
  EXPECT_NE(t3.errors[0].reason.find("the label is ignored"), std::string::npos);
  EXPECT_EQ(Translated(t3)["shop/a"].mode(), v1::MODE_UNSPECIFIED);
  EXPECT_TRUE(Translated(t3)["shop/a"].enrolled());
}

}  // namespace
}  // namespace zm::test
