// Leader election through a coordination.k8s.io/v1 Lease, with client-go's algorithm (leaderelection.LeaderElector +
// resourcelock.LeaseLock): GET the Lease, create it on 404, take it over with a PUT that carries the observed
// metadata.resourceVersion once the holder's lease has expired (409 Conflict = someone else won the race), renew it
// every retry period while leading, and give up when no renewal succeeded for renew-deadline or when the Lease shows
// another holder. On Stop() while leading the Lease is released (empty holder, leaseDurationSeconds 1, like client-go
// ReleaseOnCancel) so a standby takes over at its next poll.
//
// Expiry as a standby sees it: measured with the local steady clock from the moment this replica observed the current
// record (immune to wall-clock skew between replicas, as in client-go), minus the polling lag estimated from the
// record's renewTime against the local wall clock and clamped to [0, retry period]; the next poll is scheduled at that
// expiry rather than a whole retry period later. Takeover therefore happens within the lease duration after the
// leader's last renewal (when the clocks agree), and never more than one retry period early when they do not — which is
// why validation also requires renew-deadline + retry-period <= lease-duration: a leader that stops renewing gives up
// before any standby can take over.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "controller/k8s/http.h"

namespace zm::k8s {

struct LeaderElectionConfig {
  std::string lease_namespace;  // "" = DefaultLeaseNamespace()
  std::string lease_name = "zeromesh-controller";
  std::string identity;  // "" = DefaultLeaderIdentity()
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

// false with *error unless 0 < retry period < renew deadline < lease duration, renew deadline + retry period <= lease
// duration, and the lease duration is whole seconds (leaseDurationSeconds is an integer).
bool ValidateLeaderElection(const LeaderElectionConfig& c, std::string* error);
// "15s", "500ms", "1m30s", "1.5s" (Go time.ParseDuration subset: ms, s, m, h). nullopt on anything else or <= 0.
std::optional<std::chrono::milliseconds> ParseLeaderDuration(const std::string& s);
// env POD_NAMESPACE, else the in-cluster ServiceAccount namespace file, else "zeromesh-system".
std::string DefaultLeaseNamespace(
    const std::string& sa_namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace");
// env POD_NAME, else the host name; plus "_" and a random suffix (so a restarted pod never reuses an identity).
std::string DefaultLeaderIdentity();

// Lease "MicroTime": RFC 3339 UTC with microseconds, e.g. 2026-01-02T03:04:05.123456Z.
std::string FormatMicroTime(std::chrono::system_clock::time_point t);
// RFC 3339 with optional fraction and "Z" or a numeric offset. nullopt if malformed.
std::optional<std::chrono::system_clock::time_point> ParseMicroTime(const std::string& s);

struct LeaseRecord {
  std::string holder;
  int lease_duration_seconds = 0;
  std::optional<std::chrono::system_clock::time_point> acquire_time;
  std::optional<std::chrono::system_clock::time_point> renew_time;
  int lease_transitions = 0;
  bool operator==(const LeaseRecord&) const = default;
};
LeaseRecord LeaseRecordFromJson(const nlohmann::json& lease);  // from a Lease object (missing fields: zero values)
nlohmann::json LeaseSpecJson(const LeaseRecord& r);

// When a standby considers the record it first observed at `observed_at` (steady clock; `observed_wall` is the wall
// clock at the same moment) expired: observed_at + lease duration - clamp(observed_wall - renew_time, 0, retry
// period). Without a renew time, no lag is subtracted.
std::chrono::steady_clock::time_point LeaseExpiry(std::chrono::steady_clock::time_point observed_at,
                                                  std::chrono::system_clock::time_point observed_wall,
                                                  const LeaseRecord& record, std::chrono::milliseconds lease_duration,
                                                  std::chrono::milliseconds retry_period);

class LeaderElector {
 public:
  struct Callbacks {
    std::function<void()> started_leading;  // on the elector thread; renewals wait until it returns
    // Leadership lost while leading (not called for Stop()): the reason. The process should exit (client-go style).
    std::function<void(const std::string& reason)> stopped_leading;
  };

  LeaderElector(ClientConfig config, LeaderElectionConfig lec, Callbacks callbacks);
  ~LeaderElector();

  void Start();
  // Ends the loop; releases the Lease first if this replica holds it.
  void Stop();

  bool leading() const { return leading_.load(); }
  std::string holder() const;                                   // last observed holder identity ("" = none / unknown)
  uint64_t transitions() const { return transitions_.load(); }  // times this replica acquired or lost leadership
  const LeaderElectionConfig& config() const { return lec_; }
  std::string LeaseRef() const { return lec_.lease_namespace + "/" + lec_.lease_name; }
  nlohmann::json Describe() const;  // for /debug/config_dump

 private:
  enum class Attempt { kAcquired, kHeldByOther, kFailed };
  void Loop();
  Attempt TryAcquireOrRenew();
  void Release();
  void Observe(const nlohmann::json& lease, const LeaseRecord& r);
  void SetHolder(const std::string& h);

  Http http_;
  LeaderElectionConfig lec_;
  Callbacks cb_;
  std::string path_;  // .../namespaces/NS/leases/NAME

  // Elector thread only:
  nlohmann::json observed_lease_;  // the last Lease object read or written (metadata.resourceVersion)
  LeaseRecord observed_;
  bool have_observed_ = false;
  std::chrono::steady_clock::time_point observed_at_;
  std::chrono::steady_clock::time_point expiry_;
  std::string last_logged_holder_;

  std::atomic<bool> leading_{false};
  std::atomic<uint64_t> transitions_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // guarded by mu_
  std::string holder_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace zm::k8s
