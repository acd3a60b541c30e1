#include "controller/k8s/source.h"

#include <chrono>
#include <ctime>

#include "common/log.h"

namespace zm::k8s {
namespace {

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Source::Source(ClientConfig config, manifest::Limits limits, Publish publish)
    : http_(std::move(config)), limits_(limits), publish_(std::move(publish)) {
  auto add = [this](const char* kind, std::string path) {
    reflectors_.push_back(std::make_unique<Reflector>(&http_, kind, std::move(path), [this] { Changed(); }));
  };
  add("Pod", "/api/v1/pods");
  add("Namespace", "/api/v1/namespaces");
  add("Service", "/api/v1/services");
  add("EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices");
  add("TrafficPermission", std::string(kCrdGroupVersion) + "/trafficpermissions");
  add("MeshConfig", std::string(kCrdGroupVersion) + "/meshconfigs");
  add("ServicePolicy", std::string(kCrdGroupVersion) + "/servicepolicies");
  // Gateway API is optional: without its TCPRoute CRD the mesh simply has no routes (looked for again every 10 s).
  add("TCPRoute", "/apis/gateway.networking.k8s.io/v1alpha2/tcproutes");
  reflectors_.back()->set_optional(10);
  // Optional the same way: without it no cross-namespace backendRef is permitted.
  add("ReferenceGrant", "/apis/gateway.networking.k8s.io/v1beta1/referencegrants");
  reflectors_.back()->set_optional(10);
  // HTTPRoute and GRPCRoute (standard channel, v1): optional too; the node proxy does not act on them yet (issue 17).
  add("HTTPRoute", std::string(kGatewayV1Prefix) + "/httproutes");
  reflectors_.back()->set_optional(10);
  add("GRPCRoute", std::string(kGatewayV1Prefix) + "/grpcroutes");
  reflectors_.back()->set_optional(10);
}

Source::~Source() {
  Stop();
}

bool Source::Start(std::string* error) {
  if (http_.config().server.empty()) {
    *error = "kubernetes: no API server address";
    return false;
  }
  HttpResponse v = http_.Request("GET", "/version", "", "", 10);
  if (v.ok()) {
    auto j = nlohmann::json::parse(v.body, nullptr, false);
    log::Info("kubernetes API server reachable",
              {{"server", http_.config().Describe()},
               {"version", j.is_object() && j.contains("gitVersion") ? j["gitVersion"] : nlohmann::json("?")}});
  } else {
    // Not fatal: the watches retry with backoff (the API server may be restarting).
    log::Warn("kubernetes API server not reachable yet; retrying in the background",
              {{"server", http_.config().Describe()}, {"error", v.Describe()}});
  }
  for (auto& r : reflectors_) {
    Reflector* raw = r.get();
    threads_.emplace_back([this, raw] { raw->Run(stop_); });
  }
  loop_ = std::thread([this] { Loop(); });
  return true;
}

void Source::Stop() {
  if (stop_.exchange(true)) return;
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  if (loop_.joinable()) loop_.join();
}

std::optional<nlohmann::json> Source::FindPod(const std::string& ns, const std::string& name) const {
  return reflectors_[0]->Get(ns + "/" + name);
}

Reflector::Cache Source::Pods() const {
  return reflectors_[0]->Snapshot();
}

void Source::Changed() {
  std::lock_guard<std::mutex> lock(mu_);
  dirty_ = true;
  cv_.notify_all();
}

void Source::Loop() {
  auto last_waiting_log = std::chrono::steady_clock::time_point{};
  while (!stop_.load()) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // The periodic pass retries status writes that failed and re-reports what is still not synced.
      cv_.wait_for(lock, std::chrono::seconds(30), [this] { return dirty_ || stop_.load(); });
      if (stop_.load()) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // debounce bursts (a relist, a rollout)
    {
      std::lock_guard<std::mutex> lock(mu_);
      dirty_ = false;
    }
    std::vector<std::string> waiting;
    for (const auto& r : reflectors_) {
      if (!r->synced()) waiting.push_back(r->kind() + (r->last_error().empty() ? "" : " (" + r->last_error() + ")"));
    }
    if (!waiting.empty()) {
      // A partial view (say, workloads without their policies) must never be published.
      auto now = std::chrono::steady_clock::now();
      if (now - last_waiting_log > std::chrono::seconds(10)) {
        log::Info("waiting for the first sync of every kubernetes resource before publishing", {{"waiting", waiting}});
        last_waiting_log = now;
      }
      continue;
    }
    Objects objs;
    objs.pods = reflectors_[0]->Snapshot();
    objs.namespaces = reflectors_[1]->Snapshot();
    objs.services = reflectors_[2]->Snapshot();
    objs.endpoint_slices = reflectors_[3]->Snapshot();
    objs.permissions = reflectors_[4]->Snapshot();
    objs.mesh_configs = reflectors_[5]->Snapshot();
    objs.service_policies = reflectors_[6]->Snapshot();
    objs.tcp_routes = reflectors_[7]->Snapshot();
    objs.reference_grants = reflectors_[8]->Snapshot();
    objs.http_routes = reflectors_[9]->Snapshot();
    objs.grpc_routes = reflectors_[10]->Snapshot();
    objs.last_good = &last_good_;
    Translation t = Translate(objs, limits_);
    last_good_ = t.accepted;
    log::Debug("kubernetes objects translated", {{"workloads", t.workloads},
                                                 {"enrolled", t.enrolled},
                                                 {"services", t.services},
                                                 {"permissions", t.permissions},
                                                 {"invalid", t.errors.size()}});
    publish_(t);
    WriteStatuses(t.statuses);
  }
}

void Source::WriteStatuses(const std::vector<CrdStatus>& statuses) {
  if (write_status_ && !write_status_()) return;  // a standby leaves status to the leader
  std::string now = NowRfc3339();
  for (const auto& s : statuses) {
    if (stop_.load()) return;
    if (StatusUpToDate(s)) continue;
    std::string path = (s.api_prefix.empty() ? std::string(kCrdGroupVersion) : s.api_prefix) +
                       (s.ns.empty() ? "" : "/namespaces/" + s.ns) + "/" + s.resource + "/" + s.name + "/status";
    HttpResponse r = http_.Request("PATCH", path, StatusPatch(s, now).dump(), "application/merge-patch+json", 15);
    if (r.ok()) {
      log::Info("status written", {{"resource", s.resource},
                                   {"namespace", s.ns},
                                   {"name", s.name},
                                   {"reason", s.reason},
                                   {"message", s.message}});
    } else if (r.status != 404) {  // 404: deleted meanwhile
      log::Warn("cannot write status", {{"resource", s.resource}, {"name", s.name}, {"error", r.Describe()}});
    }
  }
}

}  // namespace zm::k8s
