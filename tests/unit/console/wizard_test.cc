#include "controller/console/wizard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/console/mesh_fixture.h"

namespace zm::ctrl::console {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::SmallMesh;

class WizardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-wizard-XXXXXX";
    dir_ = mkdtemp(tmpl);
    sink_.dir = dir_;
    sink_.reload = [this] { reloads_++; };
    sink_.errors_in = [this](const std::string& file) {
      return file == refuse_ ? std::vector<std::string>{file + ":1: refused by the test"} : std::vector<std::string>{};
    };
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Read(const std::string& file) {
    std::ifstream in(dir_ + "/" + file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
  ManifestSink sink_;
  int reloads_ = 0;
  std::string refuse_;
  MeshInputs in_ = SmallMesh();
};

TEST_F(WizardTest, EnrollPreviewsWithoutWriting) {
  Wizard w(in_, sink_);
  auto r = w.Enroll({{"namespace", "legacy"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.body["applied"].get<bool>());
  EXPECT_EQ(r.body["restarts"], 0);
  EXPECT_EQ(r.body["workloads"][0]["name"], "legacy-client");
  EXPECT_NE(r.body["manifest"].get<std::string>().find("zeromesh.io/mesh: \"enabled\""), std::string::npos);
  EXPECT_NE(r.body["kubectl"].get<std::string>().find(
                "kubectl label namespace legacy zeromesh.io/mesh=enabled zeromesh.io/mode=PERMISSIVE"),
            std::string::npos);
  EXPECT_NE(r.body["manifest"].get<std::string>().find("zeromesh.io/mode: \"PERMISSIVE\""), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/namespace-legacy.yaml"));
  EXPECT_EQ(reloads_, 0);
}

TEST_F(WizardTest, EnrollThenModeKeepBothLabelsInOneNamespaceFile) {
  Wizard w(in_, sink_);
  ASSERT_EQ(w.Enroll({{"namespace", "legacy"}, {"apply", true}}).status, 200);
  auto r = w.Mode({{"namespace", "legacy"}, {"mode", "STRICT"}, {"apply", true}});
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_TRUE(r.body["applied"].get<bool>());
  std::string text = Read("namespace-legacy.yaml");
  EXPECT_NE(text.find("kind: Namespace"), std::string::npos);
  EXPECT_NE(text.find("zeromesh.io/mesh: \"enabled\""), std::string::npos) << text;
  EXPECT_NE(text.find("zeromesh.io/mode: \"STRICT\""), std::string::npos) << text;
  EXPECT_EQ(reloads_, 2);
  // Enrolling again keeps the mode the namespace chose.
  auto again = w.Enroll({{"namespace", "legacy"}});
  EXPECT_NE(again.body["manifest"].get<std::string>().find("zeromesh.io/mode: \"STRICT\""), std::string::npos);
  EXPECT_EQ(again.body["kubectl"].get<std::string>().find("PERMISSIVE"), std::string::npos);
}

TEST_F(WizardTest, ARefusedManifestIsRolledBack) {
  Wizard w(in_, sink_);
  ASSERT_EQ(w.Enroll({{"namespace", "legacy"}, {"apply", true}}).status, 200);
  const std::string before = Read("namespace-legacy.yaml");
  refuse_ = "namespace-legacy.yaml";
  auto r = w.Mode({{"namespace", "legacy"}, {"mode", "STRICT"}, {"apply", true}});
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body["error"].get<std::string>().find("refused by the test"), std::string::npos);
  EXPECT_EQ(Read("namespace-legacy.yaml"), before);
  refuse_ = "trafficpermission-shop-console.yaml";
  EXPECT_EQ(w.Policy({{"namespace", "shop"}, {"apply", true}}).status, 409);
  EXPECT_FALSE(fs::exists(dir_ + "/trafficpermission-shop-console.yaml"));  // it did not exist before
}

TEST_F(WizardTest, ModePreflightListsPlaintextClients) {
  Wizard w(in_, sink_);
  auto r = w.Mode({{"namespace", "shop"}, {"mode", "STRICT"}});
  ASSERT_EQ(r.body["breaking_clients"].size(), 1u);
  EXPECT_EQ(r.body["breaking_clients"][0]["destination"], "shop/backend-v1");
  EXPECT_EQ(r.body["breaking_clients"][0]["connections"], 4u);
  EXPECT_EQ(w.Mode({{"namespace", "shop"}, {"mode", "LOOSE"}}).status, 400);
}

TEST_F(WizardTest, PolicySuggestsTheObservedClientsAndWritesDenies) {
  Wizard w(in_, sink_);
  auto r = w.Policy({{"namespace", "shop"}});
  ASSERT_EQ(r.status, 200) << r.body.dump();
  ASSERT_EQ(r.body["observed_sources"].size(), 1u);
  EXPECT_EQ(r.body["observed_sources"][0]["identity"], "spiffe://cluster.local/ns/shop/sa/frontend");
  EXPECT_EQ(r.body["observed_sources"][0]["connections"], 100u);
  EXPECT_NE(r.body["manifest"].get<std::string>().find("action: ALLOW"), std::string::npos);
  auto d = w.Policy({{"namespace", "shop"},
                     {"allow", {"spiffe://cluster.local/ns/shop/sa/frontend"}},
                     {"deny", {"spiffe://cluster.local/ns/legacy/sa/legacy-client"}},
                     {"apply", true}});
  ASSERT_EQ(d.status, 200) << d.body.dump();
  std::string text = Read("trafficpermission-shop-console.yaml");
  EXPECT_NE(text.find("action: DENY"), std::string::npos);
  EXPECT_NE(text.find("spiffe://cluster.local/ns/legacy/sa/legacy-client"), std::string::npos);
  EXPECT_EQ(w.Policy({{"namespace", "shop"}, {"deny", {"not-an-id"}}}).status, 400);
}

TEST_F(WizardTest, CanaryEditsTheRouteAlreadyAttached) {
  Wizard w(in_, sink_);
  auto c = w.Canary({{"namespace", "shop"}});
  EXPECT_EQ(c.body["candidates"].size(), 3u);
  auto r = w.Canary({{"namespace", "shop"},
                     {"service", "backend"},
                     {"backends", {{{"name", "backend-v1"}, {"weight", 50}}, {{"name", "backend-v2"}, {"weight", 50}}}},
                     {"apply", true}});
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["file"], "tcproute-shop-backend-split.yaml");
  EXPECT_NE(Read("tcproute-shop-backend-split.yaml").find("name: backend-split"), std::string::npos);
  EXPECT_EQ(w.Canary({{"namespace", "shop"}, {"service", "backend"}, {"backends", {{{"name", "nope"}, {"weight", 1}}}}})
                .status,
            400);
}

TEST_F(WizardTest, BadNamespacesAreRefused) {
  Wizard w(in_, sink_);
  EXPECT_EQ(w.Enroll({{"namespace", "../etc"}}).status, 400);
  EXPECT_EQ(w.Enroll({{"namespace", 7}}).status, 400);
  EXPECT_EQ(w.Enroll(json::object()).status, 400);
}

TEST_F(WizardTest, KubernetesModeAppliesAsTheUserOnlyTheLabelsItOwns) {
  ManifestSink kube;
  std::vector<std::string> sent;
  kube.namespace_labels = [](const std::string&) {
    return std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "legacy"}, {"team", "a"}};
  };
  kube.kube_apply = [&sent](const std::string& manifest) {
    sent.push_back(manifest);
    return KubeApplyResult{true, 200, {}, {"Namespace legacy"}};
  };
  Wizard w(in_, kube);
  auto r = w.Enroll({{"namespace", "legacy"}, {"apply", true}});
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_TRUE(r.body["applied"].get<bool>());
  EXPECT_EQ(r.body["written"][0], "Namespace legacy");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_NE(sent[0].find("zeromesh.io/mesh: \"enabled\""), std::string::npos);
  EXPECT_NE(sent[0].find("zeromesh.io/mode: \"PERMISSIVE\""), std::string::npos);
  EXPECT_EQ(sent[0].find("team"), std::string::npos) << "a server-side apply must not take over others' labels";
  kube.kube_apply = [](const std::string&) {
    return KubeApplyResult{false, 403, {"Namespace legacy: namespaces \"legacy\" is forbidden"}, {}};
  };
  Wizard refused(in_, kube);
  auto f = refused.Mode({{"namespace", "legacy"}, {"mode", "STRICT"}, {"apply", true}});
  EXPECT_EQ(f.status, 403);
  EXPECT_NE(f.body["error"].get<std::string>().find("forbidden"), std::string::npos);
}

TEST_F(WizardTest, KubernetesModeOffersTheCommandInstead) {
  ManifestSink none;
  Wizard w(in_, none);
  auto r = w.Enroll({{"namespace", "legacy"}, {"apply", true}});
  EXPECT_EQ(r.status, 409);
  EXPECT_FALSE(r.body["applied"].get<bool>());
  EXPECT_NE(r.body["kubectl"].get<std::string>().find("kubectl label"), std::string::npos);
}

}  // namespace
}  // namespace zm::ctrl::console
