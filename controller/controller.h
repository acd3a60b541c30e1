// mesh-controller as a library: CA + config source (manifests or Kubernetes) + gRPC services (Identity, Config,
// Status) over TLS.
#pragma once

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/server.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/admin/admin_endpoints.h"
#include "controller/agent_registry.h"
#include "controller/auth/agent_auth.h"
#include "controller/auth/join_token_file.h"
#include "controller/auth/token_review.h"
#include "controller/ca/authority.h"
#include "controller/ca/reloading_authority.h"
#include "controller/config/incremental_compile.h"
#include "controller/config/push_parts.h"
#include "controller/config/store.h"
#include "controller/console/console_server.h"
#include "controller/k8s/leader_election.h"
#include "controller/k8s/source.h"
#include "controller/manifest/watcher.h"
#include "controller/metrics/controller_metrics.h"
#include "controller/service/context.h"
#include "controller/serving_cert.h"

namespace zm::ctrl {

struct Options {
  std::string manifests_dir;
  std::string listen = "127.0.0.1:15012";
  std::string ca_dir;   // generated root lives here
  std::string ca_cert;  // or bring your own (intermediate) CA ...
  std::string ca_key;
  std::string ca_bundle;    // ... and the roots that trust it
  std::string ca_secret;    // Kubernetes: "[NS/]NAME" of a kubernetes.io/tls Secret holding the CA (created if missing)
  std::string join_tokens;  // file (required in universal mode, optional with Kubernetes)
  // Kubernetes mode: agents may also authenticate with a projected token of this ServiceAccount ("ns/name"), audience
  // `token_audience`, checked by TokenReview. Empty disables ServiceAccount-token authentication.
  std::string agent_service_account = "zeromesh-system/zeromesh-agent";
  std::string token_audience = "zeromesh";
  uint32_t max_cert_ttl_seconds = 86400;
  size_t push_part_bytes =
      kPushPartBytes;  // pushes larger than this go out in parts (push_parts.h; tests make it small)
  // Agents receiving a full snapshot at once (service/full_push_gate.h); the others wait for a slot. 0: no bound.
  size_t max_concurrent_full_pushes = 16;
  std::vector<std::string> extra_server_names;  // more DNS SANs for the serving certificate
  std::string serving_cert_dir;  // where the rotating serving certificate is written ("": a private temp dir)
  // Kubernetes: "[NS/]NAME" of the ConfigMap the controller keeps the trust bundle in (key root-cert.pem) for agents
  // and anyone else who must trust the mesh without reading the CA Secret. Empty: not published.
  std::string trust_bundle_configmap;
  // How often the CA source is re-read (rotation without restart): files every second, a Secret every 10 s.
  std::chrono::milliseconds ca_reload_interval{0};  // 0: those defaults
  bool watch = true;
  // Kubernetes mode (instead of manifests_dir): in-cluster config, or this kubeconfig file when set.
  bool kubernetes = false;
  std::string kubeconfig;
  // Kubernetes mode: leader election through a coordination.k8s.io/v1 Lease. Only the leader binds `listen` (serves
  // agents) and writes CRD status; a standby keeps its watches and compiled config warm and reports not ready. Losing
  // the lease is fatal (see Controller::OnFatal). Ignored in universal (manifests) mode.
  bool leader_elect = true;
  k8s::LeaderElectionConfig leader_election;  // empty namespace / identity: the defaults of leader_election.h
  // Admin HTTP: "" disables (the library default; mesh-controller's flags default to 127.0.0.1:15014 / 0.0.0.0:15015).
  std::string admin_addr;    // /metrics /healthz /readyz /debug/config_dump
  std::string metrics_addr;  // /metrics /healthz /readyz
  // Operators' gRPC port ("": off; the chart sets 127.0.0.1:15016): Status.Get/Resources over TLS with no client
  // credential, on loopback only, so only a process in this pod can reach it, i.e. `meshctl` through a
  // pods/portforward that the API server authenticated and authorized (docs/design.md, "meshctl from a kubeconfig").
  std::string operator_addr;
  // The web console (controller/console, docs/ui.md): "" = off (the default; the chart's console.enabled sets it).
  std::string console_addr;
};

class Controller {
 public:
  static std::unique_ptr<Controller> Create(const Options& opts, std::string* error);
  ~Controller();

  bool Start(std::string* error);  // loads manifests, binds, starts watching
  void Shutdown();                 // bounded: open streams are cancelled after ~1 s
  void Wait();

  int port() const { return port_; }
  int operator_port() const { return operator_port_; }  // 0 when off
  // Re-reads the manifest directory now (the watcher calls this too). Returns true if the load was valid.
  bool ReloadManifests();
  ConfigStore& store() { return *store_; }
  std::shared_ptr<const ca::Authority> authority() const { return ca_->Current(); }
  const ServingCert* serving_cert() const { return serving_cert_.get(); }
  AgentRegistry& agents() { return agents_; }
  const TrafficStore& traffic() const { return agents_.traffic(); }  // workload pairs, from the agents' reports
  ControllerMetrics& metrics() { return metrics_; }
  FullPushGate& full_pushes() { return *full_pushes_; }
  const AdminEndpoints* admin() const { return admin_.get(); }
  uint16_t console_port() const { return console_ ? console_->port() : 0; }  // 0 when off
  // What keeps the controller from being ready (empty = ready): for /readyz.
  std::vector<std::string> NotReady() const;
  // Called once, from another thread, when this replica loses the lease (or cannot serve after winning it): the
  // process should exit non-zero and be restarted, as client-go's leader election does. Set before Start.
  void OnFatal(std::function<void(const std::string& reason)> fn) { on_fatal_ = std::move(fn); }
  bool leading() const { return !elector_ || elector_->leading(); }  // true without leader election

 private:
  Controller() = default;
  bool MakeCa(std::string* error);
  void OnCaChanged(const std::shared_ptr<const ca::Authority>& now);
  void PublishTrustBundle();  // Kubernetes: the trust-bundle ConfigMap (retried by the CA watch until it succeeds)
  std::vector<std::string> SecurityProblems() const;  // for meshctl status
  bool StartServing(std::string* error);              // the agents' gRPC server: at Start, or on becoming the leader
  bool StartOperatorPort(std::string* error);         // every replica, at Start (a standby says it is one)
  bool StartConsole(std::string* error);              // when console_addr is set
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> ServingCertProvider() const;
  bool MakeLeaderElector(std::string* error);
  void AddStateCollectors();
  void PublishResources(std::vector<manifest::Located> resources);  // compile + publish (reload_mu_ held)
  // Makes `snap` the next version after `current` (the store's current one), with the push-latency clock started.
  void PublishSnapshot(std::shared_ptr<Snapshot> snap, const Snapshot* current);
  void PublishKubernetes(const k8s::Translation& t);
  // True if `errors` differ from the set last reported (and remembers them): each distinct set is logged once.
  bool ErrorsChanged(const std::vector<manifest::Error>& errors);

  Options opts_;
  std::string ca_secret_ns_, ca_secret_name_;  // --ca-secret, resolved
  std::unique_ptr<k8s::Http> ca_http_;         // Kubernetes: the CA Secret and the trust-bundle ConfigMap
  std::unique_ptr<ca::ReloadingAuthority> ca_;
  std::unique_ptr<ServingCert> serving_cert_;
  std::chrono::milliseconds ca_reload_interval_{1000};
  std::mutex bundle_mu_;
  std::string bundle_published_;  // guarded by bundle_mu_: what the ConfigMap holds, as far as we know
  std::unique_ptr<JoinTokenFile> tokens_;
  std::unique_ptr<k8s::Http> review_http_;
  std::unique_ptr<TokenReviewer> reviewer_;
  std::unique_ptr<AgentAuthenticator> auth_;
  std::unique_ptr<ConfigStore> store_;
  AgentRegistry agents_;
  ControllerMetrics metrics_;
  std::unique_ptr<FullPushGate> full_pushes_;
  ServiceContext ctx_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Service> operator_service_;
  std::unique_ptr<grpc::Server> operator_server_;
  int operator_port_ = 0;
  std::unique_ptr<manifest::DirWatcher> watcher_;
  std::optional<k8s::ClientConfig> kube_config_;
  std::unique_ptr<k8s::Source> kube_;
  std::atomic<k8s::Source*> kube_source_{nullptr};  // kube_, for gRPC threads (TokenReviewer's pod lookups)
  std::unique_ptr<AdminEndpoints> admin_;
  std::unique_ptr<k8s::Http> console_http_;  // Kubernetes: TokenReview / SubjectAccessReview of console users
  std::unique_ptr<console::ConsoleAuth> console_auth_;
  std::unique_ptr<console::KubeApplier> console_kube_;  // Kubernetes: the wizard applies as the signed-in user
  std::unique_ptr<console::ConsoleServer> console_;
  std::unique_ptr<k8s::LeaderElector> elector_;  // Kubernetes mode with leader election
  std::function<void(const std::string&)> on_fatal_;
  std::mutex serve_mu_;               // server_ creation (elector thread) vs. Shutdown
  bool serve_closed_ = false;         // guarded by serve_mu_: Shutdown began, do not start serving
  std::atomic<bool> serving_{false};  // read by /readyz on civetweb's threads
  std::mutex reload_mu_;
  manifest::DecodeCache decode_cache_;  // guarded by reload_mu_
  IncrementalCompiler compiler_;        // guarded by reload_mu_
  std::string last_errors_logged_;      // ErrorsChanged's memory
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace zm::ctrl
