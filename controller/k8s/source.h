// The Kubernetes config source of mesh-controller: list+watch of Pods, Namespaces, Services, EndpointSlices, the
// mesh CRDs and Gateway API TCPRoutes and ReferenceGrants (if installed); after the first full sync of every type (and
// on each change, debounced) it translates them and hands the result to a callback, then writes Accepted/Invalid status
// conditions to the mesh's CRD objects.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/k8s/http.h"
#include "controller/k8s/reflector.h"
#include "controller/k8s/translate.h"

namespace zm::k8s {

constexpr const char* kCrdGroupVersion = "/apis/zeromesh.io/v1alpha1";

class Source {
 public:
  using Publish = std::function<void(const Translation&)>;

  Source(ClientConfig config, manifest::Limits limits, Publish publish);
  ~Source();

  bool Start(std::string* error);  // checks that the API server answers, then starts the watches
  // Consulted before each round of CRD status writes (set before Start): a standby replica (leader election) writes
  // none, the leader does. Unset = always write.
  void set_write_status(std::function<bool()> fn) { write_status_ = std::move(fn); }
  void Resync() { Changed(); }  // translate and write status again now (e.g. on becoming leader)
  void Stop();

  const ClientConfig& config() const { return http_.config(); }
  // A pod as last seen by the watch (nullopt: unknown, or the first list has not completed). Thread-safe.
  std::optional<nlohmann::json> FindPod(const std::string& ns, const std::string& name) const;
  Reflector::Cache Pods() const;  // every pod as last seen (a copy; for occasional scans such as meshctl status)

 private:
  void Changed();
  void Loop();
  void WriteStatuses(const std::vector<CrdStatus>& statuses);

  Http http_;
  manifest::Limits limits_;
  Publish publish_;
  std::function<bool()> write_status_;
  // pods, namespaces, services, slices, permissions, configs, service policies, TCP routes, reference grants (in
  // that order)
  std::vector<std::unique_ptr<Reflector>> reflectors_;
  std::vector<std::thread> threads_;
  std::thread loop_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = false;
  LastGood last_good_;  // Loop() only
};

}  // namespace zm::k8s
