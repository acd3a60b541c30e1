// The CA and the manifest decoder use the data plane's SPIFFE rule (common/tls/spiffe.h): the shared table goes
// through ca::CheckCsr, and namespaces with '.' are refused by manifests as they are by agents.
#include <gtest/gtest.h>

#include "common/tls/spiffe.h"
#include "controller/ca/csr_check.h"
#include "controller/manifest/manifest.h"
#include "tests/unit/controller/test_env.h"
#include "tests/unit/spiffe_cases.h"

namespace zm::test {
namespace {

TEST(SpiffeRule, CsrCheckAgreesWithTheDataPlane) {
  for (const auto& c : SpiffeCases()) {
    tls::SpiffeId parsed;
    std::string why;
    bool data_plane_ok = tls::ParseSpiffeId(c.id, &parsed, &why);
    ASSERT_EQ(data_plane_ok, c.error.empty()) << c.id << ": " << why;
    auto check = ca::CheckCsr(MakeCsr({.uris = {c.id}}), data_plane_ok ? parsed.trust_domain : "cluster.local");
    if (c.error.empty()) {
      EXPECT_TRUE(check.ok) << c.id << ": " << check.error;
      EXPECT_EQ(check.id, parsed);
    } else {
      EXPECT_FALSE(check.ok) << c.id;
      EXPECT_NE(check.error.find(c.error), std::string::npos) << c.id << "\n got: " << check.error;
    }
  }
}

TEST(SpiffeRule, CsrForANamespaceWithADotIsDenied) {
  auto check = ca::CheckCsr(MakeCsr({.uris = {"spiffe://cluster.local/ns/a.b/sa/web"}}), "cluster.local");
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.error,
            "bad SPIFFE ID 'spiffe://cluster.local/ns/a.b/sa/web': invalid namespace 'a.b': '.' is not allowed; a "
            "Kubernetes namespace is a DNS-1123 label (1-63 lowercase letters, digits and '-', starting and ending "
            "with a letter or digit)");
}

manifest::Result Decode(const std::string& text) {
  manifest::Result r;
  manifest::DecodeText(text, "m.yaml", manifest::Limits{}, &r);
  return r;
}

std::string Errors(const manifest::Result& r) {
  std::string all;
  for (const auto& e : r.errors) all += std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

TEST(SpiffeRule, ManifestsUseTheSameNamespaceAndServiceAccountRule) {
  EXPECT_TRUE(Decode(WorkloadYaml("w", "shop", "web.reader", "n1", "10.0.0.1")).ok());
  EXPECT_NE(Errors(Decode(WorkloadYaml("w", "a.b", "web", "n1", "10.0.0.1")))
                .find("'metadata.namespace': invalid namespace 'a.b': '.' is not allowed"),
            std::string::npos);
  EXPECT_NE(Errors(Decode(WorkloadYaml("w", "shop", "web..x", "n1", "10.0.0.1")))
                .find("'spec.serviceAccount': invalid service account 'web..x'"),
            std::string::npos);
  auto perm = Decode(
      "apiVersion: zeromesh.io/v1alpha1\nkind: TrafficPermission\nmetadata: {name: p, namespace: shop}\n"
      "spec:\n  action: ALLOW\n  sources:\n    namespaces: [ok, not.ok]\n"
      "    identities: ['spiffe://cluster.local/ns/a.b/sa/x']\n");
  std::string all = Errors(perm);
  EXPECT_NE(all.find("invalid namespace 'not.ok'"), std::string::npos) << all;
  EXPECT_NE(all.find("is not a SPIFFE ID: invalid namespace 'a.b'"), std::string::npos) << all;
  auto mc = Decode(
      "apiVersion: zeromesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\n"
      "spec: {trustDomain: Mesh.Local}\n");
  EXPECT_NE(Errors(mc).find("'spec.trustDomain': invalid trust domain 'Mesh.Local'"), std::string::npos) << Errors(mc);
}

}  // namespace
}  // namespace zm::test
