#include "tests/unit/controller/test_env.h"

#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace zm::test {

std::string MakeTempDir() {
  char tmpl[] = "/tmp/zm-ctrl-test-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void WriteFile(const std::string& path, const std::string& text) {
  // Write + rename so the watcher never sees a half-written file.
  std::string tmp = path + ".tmp~";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
  }
  std::filesystem::rename(tmp, path);
}

std::string ReadFileForTest(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::string WorkloadYaml(const std::string& name, const std::string& ns, const std::string& sa, const std::string& node,
                         const std::string& ip, const std::string& app) {
  std::string labels = app.empty() ? "" : "\n  labels:\n    app: " + app;
  return "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
         labels + "\nspec:\n  serviceAccount: " + sa + "\n  node: " + node + "\n  ip: " + ip + "\n";
}

ControllerEnv NewEnv() {
  ControllerEnv env;
  env.dir = MakeTempDir();
  env.manifests = env.dir + "/manifests";
  std::filesystem::create_directories(env.manifests);
  WriteFile(env.dir + "/tokens.yaml", std::string("node1: ") + kTokenNode1 + "\nnode2: " + kTokenNode2 + "\n");
  return env;
}

void ControllerEnv::Start(bool watch, uint32_t max_ttl) {
  ctrl::Options o;
  o.manifests_dir = manifests;
  o.listen = "127.0.0.1:0";
  o.ca_dir = dir + "/ca";
  o.join_tokens = dir + "/tokens.yaml";
  o.watch = watch;
  o.max_cert_ttl_seconds = max_ttl;
  if (push_part_bytes > 0) o.push_part_bytes = push_part_bytes;
  if (max_full_pushes >= 0) o.max_concurrent_full_pushes = static_cast<size_t>(max_full_pushes);
  std::string error;
  controller = ctrl::Controller::Create(o, &error);
  if (!controller || !controller->Start(&error)) throw std::runtime_error("controller start: " + error);
}

void ControllerEnv::Stop() {
  if (controller) controller->Shutdown();
  controller.reset();
}

agent::control::Bootstrap ControllerEnv::BootstrapFor(const std::string& node, const std::string& token) const {
  agent::control::Bootstrap b;
  b.controller = Address();
  b.node = node;
  b.token = token;
  b.ca_cert_path = dir + "/ca/root-cert.pem";
  b.ca_cert_pem = controller->authority()->trust_bundle_pem();
  return b;
}

std::shared_ptr<grpc::Channel> ControllerEnv::Channel() const {
  return agent::control::MakeChannel(BootstrapFor("node1", kTokenNode1));
}

void Auth(grpc::ClientContext* ctx, const std::string& token, const std::string& node) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  if (!node.empty()) ctx->AddMetadata("x-zeromesh-node", node);
}

namespace {

bssl::UniquePtr<EVP_PKEY> NewKey(KeyKind kind) {
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (kind == KeyKind::kRsa2048) {
    bssl::UniquePtr<RSA> rsa(RSA_new());
    bssl::UniquePtr<BIGNUM> e(BN_new());
    BN_set_word(e.get(), RSA_F4);
    RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr);
    EVP_PKEY_assign_RSA(key.get(), rsa.release());
  } else {
    bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(kind == KeyKind::kP256 ? NID_X9_62_prime256v1 : NID_secp384r1));
    EC_KEY_generate_key(ec.get());
    EVP_PKEY_assign_EC_KEY(key.get(), ec.release());
  }
  return key;
}

void PushName(GENERAL_NAMES* names, int type, const std::string& v) {
  GENERAL_NAME* gn = GENERAL_NAME_new();
  if (type == GEN_IPADD) {
    GENERAL_NAME_set0_value(gn, type, a2i_IPADDRESS(v.c_str()));
  } else {
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, v.data(), static_cast<int>(v.size()));
    GENERAL_NAME_set0_value(gn, type, s);
  }
  sk_GENERAL_NAME_push(names, gn);
}

}  // namespace

std::string MakeCsr(const CsrSpec& spec) {
  auto key = NewKey(spec.key);
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), key.get());
  STACK_OF(X509_EXTENSION)* exts = nullptr;
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  for (const auto& u : spec.uris) PushName(names, GEN_URI, u);
  for (const auto& d : spec.dns) PushName(names, GEN_DNS, d);
  for (const auto& i : spec.ips) PushName(names, GEN_IPADD, i);
  for (const auto& e : spec.emails) PushName(names, GEN_EMAIL, e);
  if (sk_GENERAL_NAME_num(names) > 0) X509V3_add1_i2d(&exts, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
  GENERAL_NAMES_free(names);
  if (spec.ca) {
    BASIC_CONSTRAINTS* bc = BASIC_CONSTRAINTS_new();
    bc->ca = 1;
    X509V3_add1_i2d(&exts, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT);
    BASIC_CONSTRAINTS_free(bc);
  }
  if (exts) X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  auto signer = spec.bad_signature ? NewKey(KeyKind::kP256) : std::move(key);
  X509_REQ_sign(req.get(), signer.get(), EVP_sha256());
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

bool WaitFor(const std::function<bool()>& pred, int ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace zm::test
