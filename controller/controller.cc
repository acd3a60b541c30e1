#include "controller/controller.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>
#include <openssl/rand.h>

#include <sys/stat.h>

#include <ctime>

#include "common/log.h"
#include "controller/admin/config_dump.h"
#include "controller/ca/x509_util.h"
#include "controller/k8s/ca_exposure.h"
#include "controller/k8s/ca_secret.h"
#include "controller/k8s/trust_bundle_configmap.h"
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

// "[NS/]NAME" with `own` as the default namespace; false if a part is empty.
bool SplitRef(const std::string& ref, const std::string& own, std::string* ns, std::string* name) {
  auto slash = ref.find('/');
  *ns = slash == std::string::npos ? own : ref.substr(0, slash);
  *name = slash == std::string::npos ? ref : ref.substr(slash + 1);
  return !ns->empty() && !name->empty() && name->find('/') == std::string::npos;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::unique_ptr<Controller> Controller::Create(const Options& opts, std::string* error) {
  std::unique_ptr<Controller> c(new Controller());
  c->opts_ = opts;
  if (opts.manifests_dir.empty() == !opts.kubernetes) {
    *error = opts.kubernetes ? "--manifests and --kubernetes/--kubeconfig exclude each other"
                             : "a config source is required: --manifests DIR, --kubernetes or --kubeconfig FILE";
    return nullptr;
  }
  if (opts.kubernetes) {
    c->kube_config_ =
        opts.kubeconfig.empty() ? k8s::InClusterConfig(error) : k8s::LoadKubeconfig(opts.kubeconfig, error);
    if (!c->kube_config_) return nullptr;
  }
  const bool review = c->kube_config_ && !opts.agent_service_account.empty();
  if (opts.join_tokens.empty() && !review) {
    *error = opts.kubernetes ? "agents cannot authenticate: give --join-tokens FILE or --agent-service-account NS/NAME"
                             : "--join-tokens FILE is required (agents authenticate with per-node join tokens)";
    return nullptr;
  }
  if (review) {
    TokenReviewOptions ro;
    auto slash = opts.agent_service_account.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == opts.agent_service_account.size()) {
      *error = "--agent-service-account: '" + opts.agent_service_account + "' must be NAMESPACE/NAME";
      return nullptr;
    }
    ro.agent_namespace = opts.agent_service_account.substr(0, slash);
    ro.agent_service_account = opts.agent_service_account.substr(slash + 1);
    ro.audience = opts.token_audience;
    c->review_http_ = std::make_unique<k8s::Http>(*c->kube_config_);
    Controller* self = c.get();
    c->reviewer_ = std::make_unique<TokenReviewer>(
        c->review_http_.get(), ro,
        [self](const std::string& ns, const std::string& name) -> std::optional<nlohmann::json> {
          k8s::Source* src = self->kube_source_.load();
          return src ? src->FindPod(ns, name) : std::nullopt;
        },
        TokenReviewer::Observer{
            [self](TokenReviewer::Result r) { self->metrics_.TokenReviewed(TokenReviewer::Label(r)); },
            [self](TokenReviewer::Throttle t) { self->metrics_.TokenReviewThrottled(TokenReviewer::Label(t)); }});
  }
  if (!c->MakeCa(error)) return nullptr;
  if (!opts.join_tokens.empty()) {
    c->tokens_ = JoinTokenFile::Open(opts.join_tokens, error);
    if (!c->tokens_) return nullptr;
  }
  c->auth_ = std::make_unique<AgentAuthenticator>(c->tokens_.get(), c->reviewer_.get());
  c->store_ = std::make_unique<ConfigStore>(RandomEpoch());
  c->ctx_.store = c->store_.get();
  c->ctx_.ca = c->ca_.get();
  c->ctx_.auth = c->auth_.get();
  c->ctx_.agents = &c->agents_;
  c->ctx_.metrics = &c->metrics_;
  c->ctx_.max_cert_ttl_seconds = opts.max_cert_ttl_seconds;
  c->ctx_.push_part_bytes = opts.push_part_bytes;
  c->full_pushes_ = std::make_unique<FullPushGate>(opts.max_concurrent_full_pushes);
  c->ctx_.full_pushes = c->full_pushes_.get();
  c->ctx_.manifests_dir = c->kube_config_ ? "kubernetes " + c->kube_config_->server : opts.manifests_dir;
  c->ctx_.started_unix = std::time(nullptr);
  c->ctx_.serving_cert_not_after = [self = c.get()]() -> int64_t {
    return self->serving_cert_ ? self->serving_cert_->not_after_unix() : 0;
  };
  c->ctx_.security_problems = [self = c.get()] { return self->SecurityProblems(); };
  c->AddStateCollectors();
  return c;
}

bool Controller::MakeCa(std::string* error) {
  const Options& opts = opts_;
  const int ca_sources =
      !opts.ca_secret.empty() + !opts.ca_dir.empty() + !(opts.ca_cert.empty() && opts.ca_key.empty());
  if (ca_sources > 1) {
    *error = "give one CA source: --ca-secret, --ca-dir or --ca-cert/--ca-key";
    return false;
  }
  ca::ReloadingAuthority::Loader loader;
  auto interval = std::chrono::milliseconds(1000);
  if (!opts.ca_secret.empty()) {
    if (!kube_config_) {
      *error = "--ca-secret needs --kubernetes or --kubeconfig";
      return false;
    }
    // Default: the controller's own namespace (where its Lease lives).
    std::string own = opts.leader_election.lease_namespace.empty() ? k8s::DefaultLeaseNamespace()
                                                                   : opts.leader_election.lease_namespace;
    std::string ns, name;
    if (!SplitRef(opts.ca_secret, own, &ns, &name)) {
      *error = "--ca-secret: '" + opts.ca_secret + "' must be NAME or NAMESPACE/NAME";
      return false;
    }
    ca_secret_ns_ = ns;
    ca_secret_name_ = name;
    ca_http_ = std::make_unique<k8s::Http>(*kube_config_);
    auto first = std::make_shared<bool>(true);
    k8s::Http* http = ca_http_.get();
    // The first load may create the Secret; later ones only read it (a deleted Secret must not mint a new root).
    loader = [http, ns, name, first](std::string* err) -> std::unique_ptr<ca::Authority> {
      if (*first) {
        *first = false;
        return k8s::LoadOrCreateCaSecret(*http, ns, name, std::chrono::seconds(60), err);
      }
      return k8s::LoadCaSecret(*http, ns, name, err);
    };
    interval = std::chrono::milliseconds(10000);
  } else if (!opts.ca_cert.empty() || !opts.ca_key.empty()) {
    if (opts.ca_cert.empty() || opts.ca_key.empty()) {
      *error = "--ca-cert and --ca-key go together";
      return false;
    }
    loader = [cert = opts.ca_cert, key = opts.ca_key, bundle = opts.ca_bundle](std::string* err) {
      return ca::Authority::FromFiles(cert, key, bundle, err);
    };
  } else if (!opts.ca_dir.empty()) {
    auto first = std::make_shared<bool>(true);
    loader = [dir = opts.ca_dir, first](std::string* err) -> std::unique_ptr<ca::Authority> {
      if (*first) {
        *first = false;
        return ca::Authority::LoadOrCreate(dir, err);
      }
      std::string bundle = dir + "/trust-bundle.pem";
      return ca::Authority::FromFiles(dir + "/root-cert.pem", dir + "/root-key.pem", Exists(bundle) ? bundle : "", err);
    };
  } else {
    *error = "a CA is required: --ca-secret NAME (Kubernetes), --ca-dir DIR or --ca-cert/--ca-key";
    return false;
  }
  if (!opts.trust_bundle_configmap.empty() && !kube_config_) {
    *error = "--trust-bundle-configmap needs --kubernetes or --kubeconfig";
    return false;
  }
  ca_ = ca::ReloadingAuthority::Create(std::move(loader), error);
  if (!ca_) return false;
  if (opts.ca_reload_interval.count() > 0) interval = opts.ca_reload_interval;
  ca_reload_interval_ = interval;
  return true;
}

void Controller::OnCaChanged(const std::shared_ptr<const ca::Authority>& now) {
  if (serving_cert_) serving_cert_->RenewNow();  // from the signer now in force (cheap, also when only roots changed)
  {
    // A new version carries the new bundle and signer to every agent (resources unchanged).
    std::lock_guard<std::mutex> lock(reload_mu_);
    if (auto current = store_->Current()) {
      auto next = std::make_shared<Snapshot>(*current);  // the same resources (and digests), the CA as of now
      next->trust_bundle_pem = now->trust_bundle_pem();
      next->ca_signer = now->signer_id();
      next->created_unix = std::time(nullptr);
      PublishSnapshot(std::move(next), current.get());
    }
  }
  PublishTrustBundle();
  log::Info("mesh CA change published", {{"signer_id", now->signer_id()}});
}

void Controller::PublishTrustBundle() {
  if (opts_.trust_bundle_configmap.empty() || !ca_http_) return;
  std::string bundle = ca_->Current()->trust_bundle_pem();
  std::lock_guard<std::mutex> lock(bundle_mu_);
  if (bundle == bundle_published_) return;
  std::string ns, name, error;
  SplitRef(opts_.trust_bundle_configmap, k8s::DefaultLeaseNamespace(), &ns, &name);
  if (!k8s::PublishTrustBundle(*ca_http_, ns, name, bundle, &error)) {
    log::Warn("trust bundle not published yet; retrying", {{"error", error}});
    return;
  }
  bundle_published_ = bundle;
}

std::vector<std::string> Controller::SecurityProblems() const {
  std::vector<std::string> out;
  if (std::string e = ca_->last_error(); !e.empty()) {
    out.push_back("the CA source cannot be re-read (" + e + "); the previously loaded CA stays in force");
  }
  if (tokens_) {
    std::string plain;
    for (const auto& t : tokens_->Describe()) {
      if (t.plaintext) plain += (plain.empty() ? "" : ", ") + t.node;
    }
    if (!plain.empty()) {
      out.push_back("the join-token file " + opts_.join_tokens + " holds plaintext tokens (" + plain +
                    "): anyone who reads it can act as those nodes; replace each entry by the sha256 line that "
                    "`meshctl join-token create NODE` prints");
    }
  }
  k8s::Source* src = kube_source_.load();
  if (src && !ca_secret_name_.empty()) {
    for (auto& p : k8s::PodsMountingSecret(src->Pods(), ca_secret_ns_, ca_secret_name_)) out.push_back(std::move(p));
  }
  return out;
}

void Controller::AddStateCollectors() {
  metrics_.AddCollector(std::make_shared<metrics::CallbackCollector>([this] {
    auto connected =
        metrics::GaugeFamily("zeromesh_controller_connected_agents", "Agents with an open configuration stream.");
    auto known = metrics::GaugeFamily("zeromesh_controller_known_agents", "Agents that ever connected or reported.");
    auto synced = metrics::GaugeFamily("zeromesh_controller_synced_agents",
                                       "Connected agents that ACKed the current configuration version.");
    auto version = metrics::GaugeFamily("zeromesh_controller_config_version",
                                        "Version of the configuration in force (0: none valid yet).");
    auto errors = metrics::GaugeFamily("zeromesh_controller_manifest_errors",
                                       "Errors of the last manifest load (0: it was valid).");
    auto sending =
        metrics::GaugeFamily("zeromesh_controller_full_pushes_sending",
                             "Agent streams being sent a full snapshot (bounded by --max-concurrent-full-pushes).");
    auto queued = metrics::GaugeFamily("zeromesh_controller_full_pushes_waiting",
                                       "Agent streams waiting for a slot to be sent their full snapshot.");
    auto snap = store_->Current();
    uint64_t current = snap ? snap->version : 0;
    double n_connected = 0, n_synced = 0;
    auto list = agents_.List();
    for (const auto& a : list) {
      n_connected += a.connected();
      n_synced += a.connected() && current > 0 && a.acked_version() == current;
    }
    metrics::AddSample(&connected, n_connected);
    metrics::AddSample(&known, static_cast<double>(list.size()));
    metrics::AddSample(&synced, n_synced);
    metrics::AddSample(&version, static_cast<double>(current));
    metrics::AddSample(&errors, static_cast<double>(store_->errors().size()));
    metrics::AddSample(&sending, static_cast<double>(full_pushes_->sending()));
    metrics::AddSample(&queued, static_cast<double>(full_pushes_->waiting()));
    return std::vector<prometheus::MetricFamily>{connected, known, synced, version, errors, sending, queued};
  }));
}

std::vector<std::string> Controller::NotReady() const {
  std::vector<std::string> missing;
  // A standby is ready: healthy, watching, able to take over. It is not in the agents' way: it does not bind their
  // port, and agents dial every replica's address (headless Service) and keep the one that accepts. Were it unready,
  // the PodDisruptionBudget could never let the leader's node drain and rollouts would stall.
  if (!serving_ && !(elector_ && !elector_->leading())) missing.push_back("the gRPC server is not serving");
  if (!store_->Current()) missing.push_back("no valid mesh configuration loaded (see the manifest errors)");
  return missing;
}

Controller::~Controller() {
  Shutdown();
}

bool Controller::ReloadManifests() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  manifest::Limits limits{opts_.max_cert_ttl_seconds};
  auto result = manifest::LoadDir(opts_.manifests_dir, limits, &decode_cache_);
  if (!result.ok()) {
    // Keep the last good configuration; report each problem once per distinct set.
    if (ErrorsChanged(result.errors)) {
      for (const auto& e : result.errors) {
        log::Error("manifest rejected", {{"file", e.file}, {"line", e.line}, {"reason", e.reason}});
      }
      log::Warn("keeping the last good configuration",
                {{"errors", result.errors.size()}, {"version", store_->Current() ? store_->Current()->version : 0}});
    }
    store_->SetErrors(std::move(result.errors));
    metrics_.ManifestRejected();
    return false;
  }
  ErrorsChanged({});
  store_->SetErrors({});
  PublishResources(std::move(result.resources));
  return true;
}

bool Controller::ErrorsChanged(const std::vector<manifest::Error>& errors) {
  std::string sig;
  for (const auto& e : errors) sig += e.file + ":" + std::to_string(e.line) + ":" + e.reason + "\n";
  if (sig == last_errors_logged_) return false;
  last_errors_logged_ = std::move(sig);
  return true;
}

void Controller::PublishResources(std::vector<manifest::Located> resources) {
  MeshDefaults defaults;
  defaults.cert_ttl_seconds = opts_.max_cert_ttl_seconds;
  auto current = store_->Current();  // unchanged resources are shared with it
  // `resources` (the mesh as given) is freed on return, after the push: not on the way of the agents' ACKs.
  auto snap = compiler_.Compile(std::move(resources), defaults, current.get());
  auto authority = ca_->Current();
  snap->trust_bundle_pem = authority->trust_bundle_pem();
  snap->ca_signer = authority->signer_id();
  PublishSnapshot(std::move(snap), current.get());
}

void Controller::PublishSnapshot(std::shared_ptr<Snapshot> snap, const Snapshot* current) {
  size_t n = snap->resources.size();
  // Recorded before Publish wakes the streams: Publish assigns current + 1 (this is the only publisher).
  metrics_.Published(current ? current->version + 1 : 1);
  if (store_->Publish(snap)) {
    log::Info("configuration published", {{"version", snap->version}, {"resources", n}});
  }
}

void Controller::PublishKubernetes(const k8s::Translation& t) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  // Invalid CRD objects are left out (their status says why); everything valid still applies.
  if (ErrorsChanged(t.errors)) {  // each distinct set once, not on every pass
    for (const auto& e : t.errors) log::Warn("kubernetes object rejected", {{"object", e.file}, {"reason", e.reason}});
  }
  store_->SetErrors(t.errors);
  auto before = store_->Current();
  PublishResources(t.resources);
  if (store_->Current() != before) {
    log::Info("kubernetes configuration applied", {{"workloads", t.workloads},
                                                   {"enrolled", t.enrolled},
                                                   {"services", t.services},
                                                   {"permissions", t.permissions},
                                                   {"invalid", t.errors.size()}});
  }
}

bool Controller::StartServing(std::string* error) {
  std::lock_guard<std::mutex> lock(serve_mu_);
  if (serve_closed_) {
    *error = "shutting down";
    return false;
  }
  grpc::experimental::TlsServerCredentialsOptions tls(ServingCertProvider());
  tls.watch_identity_key_cert_pairs();
  tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);

  services_.push_back(std::make_unique<IdentityService>(&ctx_));
  services_.push_back(std::make_unique<ConfigService>(&ctx_));
  services_.push_back(std::make_unique<StatusService>(&ctx_));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts_.listen, grpc::experimental::TlsServerCredentials(tls), &port_);
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
  serving_ = true;
  return true;
}

std::shared_ptr<grpc::experimental::CertificateProviderInterface> Controller::ServingCertProvider() const {
  // The file watcher re-reads the serving certificate every second: a renewed one is used for new handshakes while
  // established streams go on.
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(serving_cert_->key_path(),
                                                                              serving_cert_->cert_path(), 1);
}

bool Controller::StartOperatorPort(std::string* error) {
  if (opts_.operator_addr.empty()) return true;
  grpc::experimental::TlsServerCredentialsOptions tls(ServingCertProvider());
  tls.watch_identity_key_cert_pairs();
  tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  operator_service_ = std::make_unique<StatusService>(&ctx_, StatusService::Role::kOperator);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts_.operator_addr, grpc::experimental::TlsServerCredentials(tls), &operator_port_);
  builder.RegisterService(operator_service_.get());
  builder.SetMaxReceiveMessageSize(64 << 10);  // requests are empty messages
  operator_server_ = builder.BuildAndStart();
  if (!operator_server_ || operator_port_ == 0) {
    *error = "--operator-addr: cannot listen on " + opts_.operator_addr;
    operator_server_.reset();
    return false;
  }
  return true;
}

bool Controller::MakeLeaderElector(std::string* error) {
  k8s::LeaderElectionConfig lec = opts_.leader_election;
  if (lec.lease_namespace.empty()) lec.lease_namespace = k8s::DefaultLeaseNamespace();
  if (lec.identity.empty()) lec.identity = k8s::DefaultLeaderIdentity();
  if (!k8s::ValidateLeaderElection(lec, error)) return false;
  k8s::LeaderElector::Callbacks cb;
  cb.started_leading = [this] {
    std::string err;
    if (!StartServing(&err)) {
      {
        std::lock_guard<std::mutex> lock(serve_mu_);
        if (serve_closed_) return;  // shutting down meanwhile
      }
      log::Error("cannot serve agents after becoming leader", {{"listen", opts_.listen}, {"error", err}});
      if (on_fatal_) on_fatal_("cannot listen on " + opts_.listen + ": " + err);
      return;
    }
    log::Info("serving agents as the leader", {{"listen", opts_.listen}, {"port", port_}});
    if (kube_) kube_->Resync();  // CRD status the previous leader left unwritten: now, not at the next periodic pass
  };
  cb.stopped_leading = [this](const std::string& reason) {
    if (on_fatal_) on_fatal_(reason);
  };
  elector_ = std::make_unique<k8s::LeaderElector>(*kube_config_, std::move(lec), std::move(cb));
  metrics_.AddCollector(std::make_shared<metrics::CallbackCollector>([this] {
    auto leader = metrics::GaugeFamily("zeromesh_controller_leader",
                                       "1 if this replica holds the leader-election lease (serves agents), else 0.");
    auto transitions = metrics::CounterFamily("zeromesh_controller_leader_transitions_total",
                                              "Times this replica acquired or lost (released) the lease.");
    metrics::AddSample(&leader, elector_->leading() ? 1 : 0);
    metrics::AddSample(&transitions, static_cast<double>(elector_->transitions()));
    return std::vector<prometheus::MetricFamily>{leader, transitions};
  }));
  return true;
}

bool Controller::Start(std::string* error) {
  if (!kube_config_) ReloadManifests();  // an invalid first load is reported; streams wait for a good config
  {
    ServingCert::Spec spec;
    spec.dns = {kServerName, "localhost"};
    for (const auto& n : opts_.extra_server_names) spec.dns.push_back(n);
    spec.ips = {"127.0.0.1", "::1"};
    spec.ttl_seconds = opts_.max_cert_ttl_seconds;
    spec.dir = opts_.serving_cert_dir;
    serving_cert_ = std::make_unique<ServingCert>(ca_.get(), std::move(spec));
    if (!serving_cert_->Init(error)) return false;
    serving_cert_->Start();
  }
  if (tokens_) tokens_->Watch();  // polled every 500 ms: a revoked token is refused within a second
  PublishTrustBundle();
  ca_->Watch(
      ca_reload_interval_, [this](const std::shared_ptr<const ca::Authority>& now) { OnCaChanged(now); },
      [this] { PublishTrustBundle(); });
  if (kube_config_ && opts_.leader_elect && !MakeLeaderElector(error)) return false;
  ctx_.standby = [this]() -> std::string {
    if (!elector_ || elector_->leading()) return "";
    std::string holder = elector_->holder();
    return "standby: the lease " + elector_->LeaseRef() +
           (holder.empty() ? " is not held by this replica" : " is held by " + holder);
  };
  if (!StartOperatorPort(error)) return false;
  // Admin endpoints first: /readyz says "not serving" until the gRPC server is up.
  if (!opts_.admin_addr.empty() || !opts_.metrics_addr.empty()) {
    AdminSources src;
    src.metrics = [this] { return metrics_.Render(); };
    src.not_ready = [this] { return NotReady(); };
    src.role = [this]() -> std::string {
      if (!elector_) return "";
      return elector_->leading() ? "leader: serving agents" : ctx_.standby();
    };
    src.config_dump = [this] {
      auto dump = ControllerConfigDump(*store_, agents_);
      if (elector_) dump["leader_election"] = elector_->Describe();
      return dump;
    };
    admin_ = std::make_unique<AdminEndpoints>(opts_.metrics_addr, opts_.admin_addr, std::move(src));
    if (!admin_->Start(error)) return false;
  }
  if (!StartConsole(error)) return false;
  // A standby does not bind the agents' port: agents (a list of addresses with pick_first, or a Service routing to
  // ready pods) reach the leader only.
  if (!elector_ && !StartServing(error)) return false;
  if (kube_config_) {
    manifest::Limits limits{opts_.max_cert_ttl_seconds};
    kube_ = std::make_unique<k8s::Source>(*kube_config_, limits,
                                          [this](const k8s::Translation& t) { PublishKubernetes(t); });
    kube_source_ = kube_.get();
    if (elector_) kube_->set_write_status([this] { return elector_->leading(); });
    if (!kube_->Start(error)) return false;
  } else if (opts_.watch) {
    watcher_ = std::make_unique<manifest::DirWatcher>(opts_.manifests_dir, [this] { ReloadManifests(); });
    watcher_->OnRestart([this] {
      log::Warn("manifest directory watch re-established", {{"dir", opts_.manifests_dir}});
      metrics_.WatchRestarted("manifests");
    });
    if (!watcher_->Start(error)) return false;
  }
  if (elector_) elector_->Start();
  log::Info(elector_ ? "mesh-controller started; serving agents once it leads" : "mesh-controller listening",
            {{"listen", opts_.listen},
             {"port", elector_ ? 0 : port_},
             {"manifests", ctx_.manifests_dir},
             {"epoch", store_->epoch()},
             {"admin_port", admin_ ? admin_->admin_port() : 0},
             {"operator_port", operator_port_},
             {"metrics_port", admin_ ? admin_->metrics_port() : 0}});
  return true;
}

bool Controller::StartConsole(std::string* error) {
  if (opts_.console_addr.empty()) return true;
  if (kube_config_) {  // the user's own Kubernetes token, whatever the agents authenticate with
    console_http_ = std::make_unique<k8s::Http>(*kube_config_);
    console_auth_ = std::make_unique<console::KubernetesAuth>(console_http_.get());
  } else {
    console_auth_ = std::make_unique<console::JoinTokenAuth>(tokens_.get());
  }
  console::ConsoleBackend backend;
  backend.auth = console_auth_.get();
  if (kube_config_) {
    console_kube_ = std::make_unique<console::KubeApplier>(*kube_config_);
    backend.kube = console_kube_.get();
  }
  backend.inputs = [this] {
    console::MeshInputs in;
    DescribeMesh(ctx_, &in.status);
    DescribeResources(ctx_, &in.resources);
    for (auto& p : traffic().Pairs(TrafficStore::Clock::now())) {
      in.traffic.push_back({std::move(p.source), std::move(p.destination), std::move(p.source_principal), p.mtls,
                            p.connections_per_second, p.bytes_per_second, p.errors_per_second, p.connections_total,
                            p.bytes_total, p.denials_total});
    }
    in.now_unix = time(nullptr);
    return in;
  };
  if (!kube_config_) {  // universal mode: the wizard writes into the manifest directory
    backend.sink.dir = opts_.manifests_dir;
    backend.sink.reload = [this] { ReloadManifests(); };
    backend.sink.errors_in = [this](const std::string& file) {
      std::vector<std::string> out;
      for (const auto& e : store_->errors()) {
        const bool ours =
            e.file == file || (e.file.size() > file.size() &&
                               e.file.compare(e.file.size() - file.size() - 1, std::string::npos, "/" + file) == 0);
        if (ours) out.push_back(file + (e.line ? ":" + std::to_string(e.line) : "") + ": " + e.reason);
      }
      return out;
    };
  }
  console_ = std::make_unique<console::ConsoleServer>(opts_.console_addr, std::move(backend));
  if (!console_->Start(error)) {
    *error = "console: " + *error;
    return false;
  }
  log::Info("console listening", {{"addr", opts_.console_addr}, {"port", console_->port()}});
  return true;
}

void Controller::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (watcher_) watcher_->Stop();
  if (kube_) kube_->Stop();
  if (ca_) ca_->Stop();
  if (tokens_) tokens_->Stop();
  ctx_.stopping = true;
  if (store_) store_->Stop();
  {
    std::lock_guard<std::mutex> lock(serve_mu_);  // after this, the elector thread starts no server
    serve_closed_ = true;
  }
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  if (operator_server_) {
    operator_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    operator_server_->Wait();
  }
  // Release the lease (if held) once this replica no longer serves: the standby takes over at its next poll.
  if (elector_) elector_->Stop();
  if (serving_cert_) serving_cert_->Stop();
  // Last: stopping civetweb takes about a second per listener, and agents whose streams ended late in a slow
  // shutdown were seen not to reconnect to the next controller (see the e2e outage test).
  if (console_) console_->Stop();
  if (admin_) admin_->Stop();
}

void Controller::Wait() {
  if (server_) server_->Wait();
}

}  // namespace zm::ctrl
