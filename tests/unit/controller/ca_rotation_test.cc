// The CA while the controller runs: the serving certificate (DNS only, within the maximum TTL, renewed in place), the
// CA source re-read (a root added, the signer switched, the old root removed) without a restart, and the agent's
// trust in its controller following the pushed bundle.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <thread>

#include "agent/control/controller_trust.h"
#include "agent/control/csr.h"
#include "controller/ca/authority.h"
#include "controller/ca/x509_util.h"
#include "controller/k8s/ca_exposure.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/identity.grpc.pb.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;

const char* kWebId = "spiffe://cluster.local/ns/shop/sa/web";

grpc::Status Sign(v1::Identity::Stub* stub, v1::SignResponse* out) {
  agent::control::KeyAndCsr kc;
  std::string err;
  if (!agent::control::GenerateKeyAndCsr(kWebId, &kc, &err)) return {grpc::StatusCode::INTERNAL, err};
  grpc::ClientContext ctx;
  Auth(&ctx, kTokenNode1);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::SignRequest req;
  req.set_csr_pem(kc.csr_pem);
  return stub->Sign(&ctx, req, out);
}

// True if the leaf of `chain_pem` verifies against exactly the roots in `roots_pem`.
bool ChainsTo(const std::string& chain_pem, const std::string& roots_pem) {
  auto chain = ca::CertsFromPem(chain_pem);
  auto roots = ca::CertsFromPem(roots_pem);
  if (chain.empty() || roots.empty()) return false;
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  for (auto& r : roots) X509_STORE_add_cert(store.get(), r.get());
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), nullptr);
  return X509_verify_cert(ctx.get()) == 1;
}

TEST(ServingCert, DnsIdentityOnlyWithinTheMaximumTtl) {
  ControllerEnv env = NewEnv();
  env.Start(/*watch=*/false, /*max_ttl=*/3600);
  auto certs = ca::CertsFromPem(ReadFileForTest(env.controller->serving_cert()->cert_path()));
  ASSERT_FALSE(certs.empty());
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certs[0].get(), NID_subject_alt_name, nullptr, nullptr)));
  ASSERT_TRUE(names);
  bool dns = false;
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); i++) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    EXPECT_NE(n->type, GEN_URI) << "the serving certificate must not carry a SPIFFE ID";
    dns = dns || n->type == GEN_DNS;
  }
  EXPECT_TRUE(dns);
  EXPECT_EQ(X509_check_host(certs[0].get(), ctrl::kServerName, strlen(ctrl::kServerName), 0, nullptr), 1);
  int64_t not_after = ca::AsnTimeToUnix(X509_get0_notAfter(certs[0].get()));
  EXPECT_LE(not_after, std::time(nullptr) + 3600 + 5);
  env.Stop();
  RemoveTree(env.dir);
}

TEST(CaRotation, RootAddedSignerSwitchedOldRootRemovedWithoutRestart) {
  ControllerEnv env = NewEnv();
  WriteFile(env.manifests + "/w.yaml", WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11"));
  env.Start(/*watch=*/false);
  const std::string r1 = env.controller->authority()->trust_bundle_pem();
  const std::string s1 = env.controller->authority()->signer_id();
  auto channel = env.Channel();  // stays open through all three steps
  auto stub = v1::Identity::NewStub(channel);
  v1::SignResponse resp;
  ASSERT_TRUE(Sign(stub.get(), &resp).ok());
  EXPECT_EQ(resp.ca_signer(), s1);
  const uint64_t v0 = env.controller->store().Current()->version;

  std::string err;
  auto r2 = ca::Authority::GenerateRootPem(&err);
  ASSERT_TRUE(r2) << err;
  // A signer that the bundle does not trust is refused and the current CA stays (the steps out of order).
  WriteFile(env.dir + "/wrong-key.pem", r2->key_pem);
  WriteFile(env.dir + "/wrong-cert.pem", r2->cert_pem);
  EXPECT_FALSE(ca::Authority::FromFiles(env.dir + "/wrong-cert.pem", env.dir + "/wrong-key.pem",
                                        env.dir + "/ca/root-cert.pem", &err));
  EXPECT_NE(err.find("does not chain to a root of the trust bundle"), std::string::npos) << err;

  // 1. The new root joins the bundle: a new config version carries both roots; the signer is unchanged.
  WriteFile(env.dir + "/ca/trust-bundle.pem", r1 + r2->cert_pem);
  ASSERT_TRUE(WaitFor([&] { return env.controller->authority()->roots().size() == 2; }, 5000));
  ASSERT_TRUE(WaitFor([&] { return env.controller->store().Current()->version > v0; }, 5000));
  EXPECT_EQ(env.controller->store().Current()->trust_bundle_pem, r1 + r2->cert_pem);
  EXPECT_EQ(env.controller->store().Current()->ca_signer, s1);

  // 2. The new root signs: workload and serving certificates come from it; the open channel keeps working.
  const uint64_t renewals = env.controller->serving_cert()->renewals();
  WriteFile(env.dir + "/ca/root-key.pem", r2->key_pem);
  WriteFile(env.dir + "/ca/root-cert.pem", r2->cert_pem);
  ASSERT_TRUE(WaitFor([&] { return env.controller->authority()->signer_id() != s1; }, 5000));
  const std::string s2 = env.controller->authority()->signer_id();
  ASSERT_TRUE(WaitFor([&] { return env.controller->store().Current()->ca_signer == s2; }, 5000));
  // The bundle change of step 1 also renews the serving certificate (under r1), possibly after `renewals` was read:
  // wait for the renewal that chains to r2, not just for any renewal.
  ASSERT_TRUE(WaitFor([&] { return env.controller->serving_cert()->renewals() > renewals; }, 5000));
  ASSERT_TRUE(WaitFor(
      [&] { return ChainsTo(ReadFileForTest(env.controller->serving_cert()->cert_path()), r2->cert_pem); }, 5000));
  ASSERT_TRUE(Sign(stub.get(), &resp).ok());
  EXPECT_EQ(resp.ca_signer(), s2);
  EXPECT_TRUE(ChainsTo(resp.cert_chain_pem(), r2->cert_pem));
  EXPECT_FALSE(ChainsTo(resp.cert_chain_pem(), r1));

  // An agent that only knew the old root reaches the controller once the pushed bundle names the new one, on the
  // same channel (no rebuild): the roots are checked per handshake.
  auto boot = env.BootstrapFor("node1", kTokenNode1);
  boot.ca_cert_path.clear();
  boot.ca_cert_pem = r1;
  boot.trust = std::make_shared<agent::control::ControllerTrust>("", r1);
  auto fresh = agent::control::MakeChannel(boot);
  auto fresh_stub = v1::Identity::NewStub(fresh);
  // gRPC reuses nothing of the first channel: a new handshake against the renewed (R2) serving certificate.
  ASSERT_TRUE(WaitFor(
      [&] {
        std::ifstream f(env.controller->serving_cert()->cert_path());
        return ChainsTo(ReadFileForTest(env.controller->serving_cert()->cert_path()), r2->cert_pem);
      },
      3000));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // gRPC's file watcher (1 s) has the new pair
  grpc::Status refused = Sign(fresh_stub.get(), &resp);
  EXPECT_FALSE(refused.ok()) << "an agent trusting only the removed root must not accept the controller";
  boot.trust->SetPushedBundle(r1 + r2->cert_pem);
  ASSERT_TRUE(WaitFor([&] { return Sign(fresh_stub.get(), &resp).ok(); }, 10000));

  // 3. The old root leaves the bundle.
  WriteFile(env.dir + "/ca/trust-bundle.pem", r2->cert_pem);
  ASSERT_TRUE(WaitFor([&] { return env.controller->authority()->roots().size() == 1; }, 5000));
  ASSERT_TRUE(WaitFor([&] { return env.controller->store().Current()->trust_bundle_pem == r2->cert_pem; }, 5000));
  EXPECT_TRUE(Sign(stub.get(), &resp).ok());
  env.Stop();
  RemoveTree(env.dir);
}

TEST(ControllerTrust, RejectsOtherRootsAndOtherNames) {
  std::string err;
  auto a = ca::Authority::GenerateRootPem(&err);
  auto b = ca::Authority::GenerateRootPem(&err);
  ASSERT_TRUE(a && b);
  auto ca = ca::Authority::FromPem(a->cert_pem, a->key_pem, std::nullopt, {"a", "a", ""}, &err);
  ASSERT_TRUE(ca) << err;
  auto key = ca::GenerateP256Key();
  ca::LeafSpec spec;
  spec.public_key = key.get();
  spec.dns = {"mesh-controller.zeromesh"};
  auto leaf = ca->Issue(spec, &err);
  ASSERT_TRUE(leaf) << err;
  agent::control::ControllerTrust trust("", b->cert_pem);
  EXPECT_NE(trust.Verify(leaf->chain_pem, "mesh-controller.zeromesh").find("does not chain"), std::string::npos);
  trust.SetPushedBundle(a->cert_pem);
  EXPECT_EQ(trust.Verify(leaf->chain_pem, "mesh-controller.zeromesh"), "");
  EXPECT_NE(trust.Verify(leaf->chain_pem, "other.example"), "");
  EXPECT_NE(trust.Verify("garbage", "mesh-controller.zeromesh"), "");
}

TEST(CaExposure, FindsPodsMountingTheCaSecret) {
  using nlohmann::json;
  std::map<std::string, json> pods;
  pods["zeromesh-system/agent-a"] = json::parse(R"({"metadata":{"name":"agent-a"},"spec":{"nodeName":"n1",
      "volumes":[{"name":"ca","secret":{"secretName":"zeromesh-ca"}}]}})");
  pods["zeromesh-system/agent-b"] = json::parse(R"({"metadata":{"name":"agent-b"},"spec":{"nodeName":"n2",
      "volumes":[{"name":"x","projected":{"sources":[{"secret":{"name":"zeromesh-ca"}}]}}]}})");
  pods["zeromesh-system/agent-c"] = json::parse(R"({"metadata":{"name":"agent-c"},"spec":{"nodeName":"n3",
      "volumes":[{"name":"ca","configMap":{"name":"zeromesh-ca-root-cert"}}]}})");
  pods["other/p"] = json::parse(R"({"spec":{"volumes":[{"name":"ca","secret":{"secretName":"zeromesh-ca"}}]}})");
  auto found = k8s::PodsMountingSecret(pods, "zeromesh-system", "zeromesh-ca");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_NE(found[0].find("agent-a"), std::string::npos);
  EXPECT_NE(found[0].find("node 'n1'"), std::string::npos);
  EXPECT_NE(found[1].find("agent-b"), std::string::npos);
}

}  // namespace
}  // namespace zm::test
