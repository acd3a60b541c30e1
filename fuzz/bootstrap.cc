// The files mesh-agent reads at start and on SIGHUP, and the trust bundle the controller pushes:
//   0  the bootstrap file (agent/control/bootstrap.h: ParseBootstrap, then CurrentToken and the controller trust);
//      written by the operator, or by the Helm chart from values anyone with chart access sets
//   1  the local config file (agent/state/local_config.h), as LocalConfigSource::Reload applies it on SIGHUP:
//      parse, read the PEM files it names, build every identity's TLS contexts, swap the snapshot
//   2  the PEM files those name (caCert, rootCert, certChain, key): cert and key parsing, and a bootstrap whose caCert
//      is this file, whose roots then verify a controller chain (ControllerTrust)
//   3  the trust bundle the controller pushes (ControllerTrust::SetPushedBundle, then Verify)
// The first byte picks one (mod 4); the rest is the file. Paths in the JSON are resolved as the agent resolves them;
// an input naming an existing file outside the fixture directory is skipped (no reading /dev/zero or /proc here).
// Besides "no crash, no leak, no UB, no uncaught exception", it checks what the parsers promise: an accepted bootstrap
// has a host:port controller, exactly one credential and a PEM CA; a refusal names the file and says why; parsed PEM
// is non-empty and a parsed key is P-256.
#include <limits.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/control/bootstrap.h"
#include "agent/state/local_config.h"
#include "common/log.h"
#include "common/tls/pem.h"
#include "tests/unit/proxy/test_certs.h"

namespace {

using nlohmann::json;

struct Fixture {
  std::string dir;  // root.pem, a.crt, a.key, token, bootstrap.json, config.json, fuzz.pem
  std::string root_pem;
  std::string controller_pem;  // a chain the controller would present
};

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

const Fixture& Get() {
  static const Fixture* f = [] {
    zm::log::SetMinLevel(static_cast<zm::log::Level>(4));  // every line off: the log is not what this target checks
    auto* x = new Fixture;
    char tmpl[] = "/tmp/zm-fuzz-bootstrap-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    x->dir = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(Get().dir, ec);
    });
    zm::testing::TestCa ca = zm::testing::MakeCa("mesh root");
    zm::tls::Credentials leaf = zm::testing::MakeLeaf(ca, {"spiffe://cluster.local/ns/shop/sa/web"});
    x->root_pem = zm::tls::CertToPem(ca.cert.get());
    Write(x->dir + "/root.pem", x->root_pem);
    Write(x->dir + "/a.crt", zm::testing::ChainPem(leaf));
    Write(x->dir + "/a.key", zm::testing::KeyPem(leaf));
    Write(x->dir + "/token", "join-token-1\n");
    x->controller_pem = zm::testing::ChainPem(leaf);
    return x;
  }();
  return *f;
}

// False when `p` (as the agent would open it) is an existing file outside the fixture directory, or not a regular
// file: the fuzzer must not make this process read the machine's files or devices.
bool Contained(const std::string& p) {
  char real[PATH_MAX];
  if (realpath(p.c_str(), real) == nullptr) return true;  // does not exist: the agent's error path, harmless
  struct stat st {};
  const std::string& dir = Get().dir;
  return std::string(real).rfind(dir + "/", 0) == 0 && stat(real, &st) == 0 && S_ISREG(st.st_mode);
}

// A path field as the agent resolves it: absolute, or relative to `base_dir` (empty: to the working directory).
bool ContainedField(const json& obj, const char* key, const std::string& base_dir) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return true;
  std::string p = it->get<std::string>();
  if (p.empty()) return true;
  return Contained(p[0] == '/' || base_dir.empty() ? p : base_dir + "/" + p);
}

bool BootstrapContained(const json& j, const std::string& dir) {
  return !j.is_object() || (ContainedField(j, "caCert", dir) && ContainedField(j, "tokenFile", ""));
}

bool LocalConfigContained(const json& j, const std::string& dir) {
  if (!j.is_object()) return true;
  if (!ContainedField(j, "rootCert", dir)) return false;
  auto ids = j.find("identities");
  if (ids == j.end() || !ids->is_array()) return true;
  for (const json& e : *ids) {
    if (e.is_object() && (!ContainedField(e, "certChain", dir) || !ContainedField(e, "key", dir))) return false;
  }
  return true;
}

void CheckBootstrap(const std::string& text, const std::string& path) {
  zm::agent::control::Bootstrap b;
  std::string error;
  if (!zm::agent::control::ParseBootstrap(text, path, &b, &error)) {
    if (error.rfind(path + ": ", 0) != 0) std::abort();
    return;
  }
  if (b.controller.find(':') == std::string::npos || b.token.empty() == b.token_file.empty() || !b.trust ||
      b.ca_cert_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    std::abort();
  }
  (void)zm::agent::control::CurrentToken(b);
  (void)b.trust->RootsPem();
  (void)b.trust->Verify(Get().controller_pem, b.server_name);
}

void CheckPem(const std::string& pem) {
  zm::tls::CertList certs;
  std::string error;
  if (zm::tls::ParsePemCerts(pem, &certs, &error)) {
    if (certs.empty()) std::abort();
    for (const auto& c : certs) {
      if (!c) std::abort();
    }
  } else if (error.empty()) {
    std::abort();
  }
  bssl::UniquePtr<EVP_PKEY> key;
  error.clear();
  if (zm::tls::ParsePemPrivateKey(pem, &key, &error)) {
    const EC_KEY* ec = key ? EVP_PKEY_get0_EC_KEY(key.get()) : nullptr;
    if (ec == nullptr || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != NID_X9_62_prime256v1) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixture& fx = Get();
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      if (!BootstrapContained(json::parse(text, nullptr, false), fx.dir)) return -1;
      CheckBootstrap(text, fx.dir + "/bootstrap.json");
      break;
    }
    case 1: {
      if (!LocalConfigContained(json::parse(text, nullptr, false), fx.dir)) return -1;
      const std::string path = fx.dir + "/config.json";
      Write(path, text);
      zm::agent::SnapshotHolder snapshots;
      zm::agent::InMemoryCertStore certs;
      zm::agent::LocalConfigSource source(path, &snapshots, &certs);
      std::string error;
      if (source.Reload(&error)) {
        if (!snapshots.Get()) std::abort();
      } else if (error.rfind(path + ": ", 0) != 0 || snapshots.Get()) {
        std::abort();
      }
      break;
    }
    case 2: {
      CheckPem(text);
      Write(fx.dir + "/fuzz.pem", text);
      CheckBootstrap(R"({"controller":"10.0.0.1:15012","token":"t","caCert":"fuzz.pem"})", fx.dir + "/bootstrap.json");
      break;
    }
    case 3: {
      zm::agent::control::ControllerTrust trust(fx.dir + "/root.pem", fx.root_pem);
      trust.SetPushedBundle(text);
      (void)trust.Verify(fx.controller_pem, "mesh-controller.zeromesh");
      (void)trust.RootsPem();
      break;
    }
  }
  return 0;
}
