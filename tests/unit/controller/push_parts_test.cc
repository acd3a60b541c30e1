// Pushes in parts: the controller's split (push_parts.h) and the agent's assembly (agent/control/push_assembly.h)
// give back exactly the push that was split; parts that do not belong together are refused.
#include <gtest/gtest.h>

#include <string>

#include "agent/control/push_assembly.h"
#include "controller/config/push_parts.h"
#include "controller/config/snapshot.h"

namespace zm::ctrl {
namespace {

namespace v1 = zeromesh::v1;
using agent::control::PushAssembly;

v1::ConfigPush BigPush(int workloads, int removed) {
  v1::ConfigPush p;
  p.set_version(7);
  p.set_epoch("ep");
  p.set_full(removed == 0);
  p.set_base_version(removed == 0 ? 0 : 6);
  p.set_trust_bundle_pem("-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----\n");
  p.set_ca_signer("abc123");
  for (int i = 0; i < workloads; ++i) {
    auto* w = p.add_upserted()->mutable_workload();
    w->set_name("web-" + std::to_string(i));
    w->set_namespace_("shop");
    w->set_ip("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250));
    (*w->mutable_labels())["app"] = std::string(100, 'x');
  }
  for (int i = 0; i < removed; ++i) {
    auto* k = p.add_removed();
    k->set_name("gone-" + std::to_string(i));
    k->set_namespace_("shop");
  }
  return p;
}

TEST(PushParts, SplitBoundedAndAssembledBackExactly) {
  for (int removed : {0, 30}) {
    const v1::ConfigPush original = BigPush(2000, removed);
    auto parts = SplitPush(original, 16 * 1024);
    ASSERT_GT(parts.size(), 10u);
    int upserted = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      EXPECT_LE(parts[i].ByteSizeLong(), 16u * 1024 + 512) << i;  // + the header repeated in each part
      EXPECT_EQ(parts[i].more(), i + 1 < parts.size());
      EXPECT_EQ(parts[i].version(), 7u);
      EXPECT_EQ(parts[i].ca_signer(), "abc123");
      EXPECT_EQ(parts[i].removed_size(), i == 0 ? removed : 0);
      upserted += parts[i].upserted_size();
    }
    EXPECT_EQ(upserted, 2000);
    EXPECT_EQ(JoinParts(parts).SerializeAsString(), original.SerializeAsString());

    PushAssembly assembly;
    v1::ConfigPush whole;
    std::string error;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      ASSERT_EQ(assembly.Add(parts[i], &whole, &error), PushAssembly::Step::kMore);
    }
    ASSERT_EQ(assembly.Add(parts.back(), &whole, &error), PushAssembly::Step::kDone) << error;
    EXPECT_EQ(whole.SerializeAsString(), original.SerializeAsString());
  }
}

TEST(PushParts, SmallPushIsOnePartAndPassesStraightThrough) {
  auto parts = SplitPush(BigPush(3, 1));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_FALSE(parts[0].more());
  PushAssembly assembly;
  v1::ConfigPush whole;
  std::string error;
  EXPECT_EQ(assembly.Add(parts[0], &whole, &error), PushAssembly::Step::kDone);
  EXPECT_EQ(whole.SerializeAsString(), BigPush(3, 1).SerializeAsString());
}

// The full push encoded part by part (what the controller keeps and sends) is what splitting the whole push gives:
// the same part boundaries, the same resources in the same order, for pushes that need parts and one that does not.
TEST(PushParts, FullPushEncodedPartByPartEqualsTheSplitWhole) {
  for (int workloads : {3, 2000}) {
    auto s = std::make_shared<Snapshot>();
    s->version = 7;
    s->trust_bundle_pem = "-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----\n";
    s->ca_signer = "abc123";
    const v1::ConfigPush given = BigPush(workloads, 0);
    for (const auto& r : given.upserted()) {
      s->resources["Workload/shop/" + r.workload().name()] = std::make_shared<const v1::Resource>(r);
    }
    s->Seal();
    const auto split = SplitPush(MakeFullPush(*s, "ep", ""), 16 * 1024);
    const auto encoded = EncodeFullPush(*s, "ep", "", 16 * 1024);
    ASSERT_EQ(encoded.size(), split.size()) << workloads << " workloads";
    EXPECT_EQ(encoded.size() > 1, workloads > 3);
    std::vector<v1::ConfigPush> decoded;
    ASSERT_TRUE(DecodeParts(encoded, &decoded));
    for (size_t i = 0; i < split.size(); ++i) {
      EXPECT_EQ(decoded[i].DebugString(), split[i].DebugString()) << "part " << i;
    }
    EXPECT_EQ(EncodeParts(split).size(), split.size());
    EXPECT_EQ(JoinParts(decoded).DebugString(), MakeFullPush(*s, "ep", "").DebugString());
  }
  std::vector<v1::ConfigPush> none;
  EXPECT_FALSE(DecodeParts({"\xff\xff not a push"}, &none));
}

TEST(PushParts, PartsOfAnotherPushAreRefused) {
  auto parts = SplitPush(BigPush(500, 0), 8 * 1024);
  ASSERT_GT(parts.size(), 2u);
  PushAssembly assembly;
  v1::ConfigPush whole;
  std::string error;
  ASSERT_EQ(assembly.Add(parts[0], &whole, &error), PushAssembly::Step::kMore);
  v1::ConfigPush other = parts[1];
  other.set_version(8);
  EXPECT_EQ(assembly.Add(other, &whole, &error), PushAssembly::Step::kBad);
  EXPECT_NE(error.find("arrived while assembling ep/7"), std::string::npos) << error;
  // After a refusal the assembly starts afresh: a complete push goes through.
  for (size_t i = 0; i + 1 < parts.size(); ++i)
    ASSERT_EQ(assembly.Add(parts[i], &whole, &error), PushAssembly::Step::kMore);
  EXPECT_EQ(assembly.Add(parts.back(), &whole, &error), PushAssembly::Step::kDone);
  EXPECT_EQ(whole.upserted_size(), 500);
}

}  // namespace
}  // namespace zm::ctrl
