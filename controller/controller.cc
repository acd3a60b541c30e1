#include "controller/controller.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <openssl/rand.h>

#include <ctime>

#include "common/log.h"
#include "controller/ca/x509_util.h"
#include "controller/service/config_service.h"
#include "controller/service/identity_service.h"
#include "controller/service/status_service.h"

namespace zm::ctrl {
namespace {

std::string RandomEpoch() {
  uint8_t b[8];
  RAND_bytes(b, sizeof(b));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (uint8_t c : b) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

}  // namespace

std::unique_ptr<Controller> Controller::Create(const Options& opts, std::string* error) {
  std::unique_ptr<Controller> c(new Controller());
  c->opts_ = opts;
  if (opts.manifests_dir.empty()) {
    *error = "--manifests DIR is required";
    return nullptr;
  }
  if (opts.join_tokens.empty()) {
    *error = "--join-tokens FILE is required (agents authenticate with per-node join tokens)";
    return nullptr;
  }
  if (!opts.ca_cert.empty() || !opts.ca_key.empty()) {
    if (opts.ca_cert.empty() || opts.ca_key.empty()) {
      *error = "--ca-cert and --ca-key go together";
      return nullptr;
    }
    c->ca_ = ca::Authority::FromFiles(opts.ca_cert, opts.ca_key, opts.ca_bundle, error);
  } else if (!opts.ca_dir.empty()) {
    c->ca_ = ca::Authority::LoadOrCreate(opts.ca_dir, error);
  } else {
    *error = "either --ca-dir DIR or --ca-cert/--ca-key is required";
    return nullptr;
  }
  if (!c->ca_) return nullptr;
  c->tokens_ = JoinTokens::Load(opts.join_tokens, error);
  if (!c->tokens_) return nullptr;
  c->store_ = std::make_unique<ConfigStore>(RandomEpoch());
  c->ctx_.store = c->store_.get();
  c->ctx_.ca = c->ca_.get();
  c->ctx_.tokens = &*c->tokens_;
  c->ctx_.agents = &c->agents_;
  c->ctx_.max_cert_ttl_seconds = opts.max_cert_ttl_seconds;
  c->ctx_.manifests_dir = opts.manifests_dir;
  c->ctx_.started_unix = std::time(nullptr);
  return c;
}

Controller::~Controller() {
  Shutdown();
}

bool Controller::ReloadManifests() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  manifest::Limits limits{opts_.max_cert_ttl_seconds};
  auto result = manifest::LoadDir(opts_.manifests_dir, limits);
  if (!result.ok()) {
    // Keep the last good configuration; report each problem once per distinct set.
    std::string sig;
    for (const auto& e : result.errors) sig += e.file + ":" + std::to_string(e.line) + ":" + e.reason + "\n";
    if (sig != last_errors_logged_) {
      for (const auto& e : result.errors) {
        log::Error("manifest rejected", {{"file", e.file}, {"line", e.line}, {"reason", e.reason}});
      }
      log::Warn("keeping the last good configuration",
                {{"errors", result.errors.size()}, {"version", store_->Current() ? store_->Current()->version : 0}});
      last_errors_logged_ = sig;
    }
    store_->SetErrors(std::move(result.errors));
    return false;
  }
  last_errors_logged_.clear();
  store_->SetErrors({});
  MeshDefaults defaults;
  defaults.cert_ttl_seconds = opts_.max_cert_ttl_seconds;
  auto snap = Compile(result.resources, defaults);
  size_t n = snap->resources.size();
  if (store_->Publish(snap)) {
    log::Info("configuration published", {{"version", snap->version}, {"resources", n}});
  }
  return true;
}

bool Controller::MakeServingCert(std::string* cert_pem, std::string* key_pem, std::string* error) {
  auto key = ca::GenerateP256Key();
  if (!key) {
    *error = "serving key generation failed";
    return false;
  }
  auto snap = store_->Current();
  std::string td = snap ? snap->mesh.trust_domain() : MeshDefaults().trust_domain;
  ca::LeafSpec spec;
  spec.public_key = key.get();
  spec.uris = {"spiffe://" + td + "/ns/zeromesh-system/sa/mesh-controller"};
  spec.dns = {kServerName, "localhost"};
  for (const auto& n : opts_.extra_server_names) spec.dns.push_back(n);
  spec.ips = {"127.0.0.1"};
  spec.ttl_seconds = 365LL * 86400;  // the sync server cannot hot-swap its cert; restart rotates it
  auto issued = ca_->Issue(spec, error);
  if (!issued) return false;
  *cert_pem = issued->chain_pem;
  *key_pem = ca::KeyToPem(key.get());
  return true;
}

bool Controller::Start(std::string* error) {
  ReloadManifests();  // an invalid first load is reported; streams wait for a good config
  std::string cert, key;
  if (!MakeServingCert(&cert, &key, error)) return false;
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({key, cert});

  services_.push_back(std::make_unique<IdentityService>(&ctx_));
  services_.push_back(std::make_unique<ConfigService>(&ctx_));
  services_.push_back(std::make_unique<StatusService>(&ctx_));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts_.listen, grpc::SslServerCredentials(ssl), &port_);
  for (auto& s : services_) builder.RegisterService(s.get());
  builder.SetMaxReceiveMessageSize(1 << 20);  // CSRs and acks are small; bound what garbage can cost
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    *error = "cannot listen on " + opts_.listen;
    server_.reset();
    return false;
  }
  if (opts_.watch) {
    watcher_ = std::make_unique<manifest::DirWatcher>(opts_.manifests_dir, [this] { ReloadManifests(); });
    if (!watcher_->Start(error)) return false;
  }
  log::Info(
      "mesh-controller listening",
      {{"listen", opts_.listen}, {"port", port_}, {"manifests", opts_.manifests_dir}, {"epoch", store_->epoch()}});
  return true;
}

void Controller::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (watcher_) watcher_->Stop();
  ctx_.stopping = true;
  if (store_) store_->Stop();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
}

void Controller::Wait() {
  if (server_) server_->Wait();
}

}  // namespace zm::ctrl
