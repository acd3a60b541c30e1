// Identity.Sign through the real gRPC API (TLS, join tokens): the accept/deny matrix.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <ctime>

#include "agent/control/controller_trust.h"
#include "agent/control/csr.h"
#include "controller/ca/authority.h"
#include "controller/ca/x509_util.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/identity.grpc.pb.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;

const char* kWebId = "spiffe://cluster.local/ns/shop/sa/web";

class SignTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env_ = new ControllerEnv(NewEnv());
    WriteFile(env_->manifests + "/w.yaml", WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11") + "---\n" +
                                               WorkloadYaml("db-1", "shop", "db", "node2", "10.244.2.11"));
    env_->Start(/*watch=*/false);
    stub_ = v1::Identity::NewStub(env_->Channel()).release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    env_->Stop();
    RemoveTree(env_->dir);
    delete env_;
  }

  static grpc::Status Sign(const std::string& csr, const std::string& token = kTokenNode1, uint32_t ttl = 0,
                           v1::SignResponse* out = nullptr, const std::string& node = "") {
    grpc::ClientContext ctx;
    Auth(&ctx, token, node);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::SignRequest req;
    req.set_csr_pem(csr);
    req.set_ttl_seconds(ttl);
    v1::SignResponse resp;
    auto st = stub_->Sign(&ctx, req, &resp);
    if (out) *out = resp;
    return st;
  }

  static void ExpectRejected(const grpc::Status& st, grpc::StatusCode code, const std::string& needle) {
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(needle), std::string::npos) << st.error_message();
  }

  static ControllerEnv* env_;
  static v1::Identity::Stub* stub_;
};
ControllerEnv* SignTest::env_ = nullptr;
v1::Identity::Stub* SignTest::stub_ = nullptr;

TEST_F(SignTest, IssuesLeafWithExpectedProfile) {
  agent::control::KeyAndCsr kc;
  std::string err;
  ASSERT_TRUE(agent::control::GenerateKeyAndCsr(kWebId, &kc, &err)) << err;
  v1::SignResponse resp;
  auto st = Sign(kc.csr_pem, kTokenNode1, 3600, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();

  auto chain = ca::CertsFromPem(resp.cert_chain_pem());
  ASSERT_EQ(chain.size(), 1u);  // generated root: leaf only
  auto roots = ca::CertsFromPem(resp.trust_bundle_pem());
  ASSERT_EQ(roots.size(), 1u);
  X509* leaf = chain[0].get();

  // Chains to the bundle, for client and server use.
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), roots[0].get());
  bssl::UniquePtr<X509_STORE_CTX> vctx(X509_STORE_CTX_new());
  ASSERT_TRUE(X509_STORE_CTX_init(vctx.get(), store.get(), leaf, nullptr));
  EXPECT_EQ(X509_verify_cert(vctx.get()), 1) << X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx.get()));

  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_TRUE(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
  EXPECT_FALSE(X509_get_key_usage(leaf) & KU_KEY_CERT_SIGN);
  uint32_t eku = X509_get_extended_key_usage(leaf);
  EXPECT_TRUE(eku & XKU_SSL_SERVER);
  EXPECT_TRUE(eku & XKU_SSL_CLIENT);
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names), 1u);
  const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, 0);
  ASSERT_EQ(gn->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier))), kWebId);
  GENERAL_NAMES_free(names);

  int64_t now = std::time(nullptr);
  int64_t nb = ca::AsnTimeToUnix(X509_get0_notBefore(leaf));
  int64_t na = ca::AsnTimeToUnix(X509_get0_notAfter(leaf));
  EXPECT_LT(nb, now - 60);  // backdated for clock skew
  EXPECT_NEAR(static_cast<double>(na), static_cast<double>(now + 3600), 10.0);
  // Our key is in the certificate: the agent kept the private half.
  bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey(leaf));
  EXPECT_EQ(EVP_PKEY_cmp(pub.get(), kc.key.get()), 1);
}

TEST_F(SignTest, DefaultTtlIsMeshDefault) {
  v1::SignResponse resp;
  ASSERT_TRUE(Sign(MakeCsr({.uris = {kWebId}}), kTokenNode1, 0, &resp).ok());
  auto chain = ca::CertsFromPem(resp.cert_chain_pem());
  ASSERT_FALSE(chain.empty());
  int64_t na = ca::AsnTimeToUnix(X509_get0_notAfter(chain[0].get()));
  EXPECT_NEAR(static_cast<double>(na), static_cast<double>(std::time(nullptr) + 86400), 10.0);
}

TEST_F(SignTest, RejectsMalformedRequests) {
  using C = grpc::StatusCode;
  ExpectRejected(Sign(MakeCsr({.uris = {"spiffe://cluster.local/ns/shop/sa/web/x"}})), C::INVALID_ARGUMENT,
                 "bad SPIFFE ID");
  ExpectRejected(Sign(MakeCsr({.uris = {"https://example.com/web"}})), C::INVALID_ARGUMENT, "bad SPIFFE ID");
  ExpectRejected(Sign(MakeCsr({})), C::INVALID_ARGUMENT, "subjectAltName");
  ExpectRejected(Sign(MakeCsr({.uris = {"spiffe://other.domain/ns/shop/sa/web"}})), C::PERMISSION_DENIED,
                 "not in trust domain");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}, .dns = {"web.shop.svc"}})), C::INVALID_ARGUMENT, "extra SANs");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}, .ips = {"10.0.0.1"}})), C::INVALID_ARGUMENT, "extra SANs");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}, .emails = {"a@b.c"}})), C::INVALID_ARGUMENT, "extra SANs");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId, "spiffe://cluster.local/ns/shop/sa/db"}})), C::INVALID_ARGUMENT,
                 "extra SANs");
  ExpectRejected(Sign(MakeCsr({.key = KeyKind::kRsa2048, .uris = {kWebId}})), C::INVALID_ARGUMENT, "unsupported key");
  ExpectRejected(Sign(MakeCsr({.key = KeyKind::kP384, .uris = {kWebId}})), C::INVALID_ARGUMENT, "unsupported key");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}, .ca = true})), C::INVALID_ARGUMENT, "CA basic constraint");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}, .bad_signature = true})), C::INVALID_ARGUMENT, "signature is invalid");
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}}), kTokenNode1, 2 * 86400), C::INVALID_ARGUMENT, "exceeds the maximum");
  ExpectRejected(Sign(""), C::INVALID_ARGUMENT, "empty CSR");
  ExpectRejected(Sign("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
                 C::INVALID_ARGUMENT, "malformed CSR");
}

TEST_F(SignTest, NodeAuthorizer) {
  using C = grpc::StatusCode;
  // shop/web runs on node1 only.
  ExpectRejected(Sign(MakeCsr({.uris = {kWebId}}), kTokenNode2), C::PERMISSION_DENIED, "is scheduled on node 'node2'");
  ExpectRejected(Sign(MakeCsr({.uris = {"spiffe://cluster.local/ns/shop/sa/ghost"}})), C::PERMISSION_DENIED,
                 "unknown workload identity");
  EXPECT_TRUE(Sign(MakeCsr({.uris = {"spiffe://cluster.local/ns/shop/sa/db"}}), kTokenNode2).ok());
}

TEST_F(SignTest, Authentication) {
  using C = grpc::StatusCode;
  std::string csr = MakeCsr({.uris = {kWebId}});
  ExpectRejected(Sign(csr, ""), C::UNAUTHENTICATED, "missing 'authorization");
  ExpectRejected(Sign(csr, "node1-token-wrong-wrong-wrong"), C::UNAUTHENTICATED, "unknown join token");
  // The node comes from the token: claiming another node with node1's token is refused.
  ExpectRejected(Sign(csr, kTokenNode1, 0, nullptr, "node2"), C::UNAUTHENTICATED, "does not belong to node 'node2'");
  EXPECT_TRUE(Sign(csr, kTokenNode1, 0, nullptr, "node1").ok());

  auto status = v1::Status::NewStub(env_->Channel());
  grpc::ClientContext ctx;
  v1::MeshStatus ms;
  ExpectRejected(status->Get(&ctx, v1::GetStatusRequest(), &ms), C::UNAUTHENTICATED, "missing");
}

TEST(CaStore, RootPersistsWithPrivateKeyMode) {
  std::string dir = MakeTempDir() + "/ca";
  std::string err;
  auto a = ca::Authority::LoadOrCreate(dir, &err);
  ASSERT_TRUE(a) << err;
  struct stat st {};
  ASSERT_EQ(stat((dir + "/root-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = ca::Authority::LoadOrCreate(dir, &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(a->trust_bundle_pem(), b->trust_bundle_pem());
  // A lone key without its cert is an error, never silently replaced.
  unlink((dir + "/root-cert.pem").c_str());
  EXPECT_FALSE(ca::Authority::LoadOrCreate(dir, &err));
  EXPECT_NE(err.find("refusing to overwrite"), std::string::npos) << err;
  RemoveTree(dir.substr(0, dir.rfind('/')));
}

TEST(CaStore, BringYourOwnIntermediate) {
  std::string root_dir = MakeTempDir();
  std::string err;
  auto root = ca::Authority::LoadOrCreate(root_dir + "/ca", &err);
  ASSERT_TRUE(root) << err;
  // Make an intermediate signed by the root: issue a CA cert via raw BoringSSL.
  auto key = ca::GenerateP256Key();
  auto root_certs = ca::CertsFromPem(root->trust_bundle_pem());
  auto root_key_pem = ReadFileForTest(root_dir + "/ca/root-key.pem");
  auto root_key = ca::KeyFromPem(root_key_pem);
  bssl::UniquePtr<X509> inter(X509_new());
  X509_set_version(inter.get(), X509_VERSION_3);
  ca::SetRandomSerial(inter.get());
  X509_NAME* name = X509_get_subject_name(inter.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const uint8_t*>("inter"), -1, -1, 0);
  X509_set_issuer_name(inter.get(), X509_get_subject_name(root_certs[0].get()));
  X509_gmtime_adj(X509_getm_notBefore(inter.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(inter.get()), 86400 * 30);
  X509_set_pubkey(inter.get(), key.get());
  ca::AddExt(inter.get(), root_certs[0].get(), NID_basic_constraints, "critical,CA:TRUE");
  ca::AddExt(inter.get(), root_certs[0].get(), NID_key_usage, "critical,keyCertSign");
  ca::AddExt(inter.get(), root_certs[0].get(), NID_subject_key_identifier, "hash");
  X509_sign(inter.get(), root_key.get(), EVP_sha256());
  WriteFile(root_dir + "/inter.pem", ca::CertToPem(inter.get()));
  WriteFile(root_dir + "/inter-key.pem", ca::KeyToPem(key.get()));

  // Without the root bundle an intermediate is refused with a hint.
  EXPECT_FALSE(ca::Authority::FromFiles(root_dir + "/inter.pem", root_dir + "/inter-key.pem", "", &err));
  EXPECT_NE(err.find("--ca-bundle"), std::string::npos) << err;
  auto ica = ca::Authority::FromFiles(root_dir + "/inter.pem", root_dir + "/inter-key.pem",
                                      root_dir + "/ca/root-cert.pem", &err);
  ASSERT_TRUE(ica) << err;
  auto leaf_key = ca::GenerateP256Key();
  ca::LeafSpec spec;
  spec.public_key = leaf_key.get();
  spec.uris = {kWebId};
  spec.ttl_seconds = 3600;
  auto issued = ica->Issue(spec, &err);
  ASSERT_TRUE(issued) << err;
  auto chain = ca::CertsFromPem(issued->chain_pem);
  ASSERT_EQ(chain.size(), 2u);  // leaf + intermediate
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root_certs[0].get());
  bssl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  X509_up_ref(chain[1].get());
  sk_X509_push(untrusted.get(), chain[1].get());
  bssl::UniquePtr<X509_STORE_CTX> vctx(X509_STORE_CTX_new());
  ASSERT_TRUE(X509_STORE_CTX_init(vctx.get(), store.get(), chain[0].get(), untrusted.get()));
  EXPECT_EQ(X509_verify_cert(vctx.get()), 1);
  // An agent verifies a controller certificate issued by the intermediate (leaf + intermediate on the wire) against
  // the root alone; and a chain that skips the intermediate does not verify.
  ca::LeafSpec serving;
  serving.public_key = leaf_key.get();
  serving.dns = {"mesh-controller.zeromesh"};
  auto served = ica->Issue(serving, &err);
  ASSERT_TRUE(served) << err;
  agent::control::ControllerTrust trust("", root->trust_bundle_pem());
  EXPECT_EQ(trust.Verify(served->chain_pem, "mesh-controller.zeromesh"), "");
  EXPECT_NE(trust.Verify(served->chain_pem.substr(0, served->chain_pem.find("-----END CERTIFICATE-----") + 26),
                         "mesh-controller.zeromesh"),
            "");
  RemoveTree(root_dir);
}

}  // namespace
}  // namespace zm::test
