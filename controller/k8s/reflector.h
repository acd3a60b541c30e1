// List + watch of one resource type into a local cache: resourceVersion, bookmarks, relist on 410 Gone, exponential
// backoff with jitter on errors, bounded watch durations.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "controller/k8s/http.h"

namespace zm::k8s {

class Reflector {
 public:
  using Cache = std::map<std::string, nlohmann::json>;  // "<namespace>/<name>" (or "/<name>") -> object

  // `path` is the collection, e.g. "/api/v1/pods" or "/apis/zeromesh.io/v1alpha1/trafficpermissions".
  // `on_change` runs (on the reflector's thread) after every cache change once the first list completed.
  Reflector(const Http* http, std::string kind, std::string path, std::function<void()> on_change);

  // For an API that may not be installed (e.g. Gateway API's TCPRoute): a 404 on the list counts as synced and empty,
  // and the list is retried every `absent_recheck_seconds` until the API appears.
  void set_optional(int absent_recheck_seconds) { absent_recheck_seconds_ = absent_recheck_seconds; }

  void Run(const std::atomic<bool>& stop);  // until stop; never throws

  bool synced() const { return synced_.load(); }
  Cache Snapshot() const;
  std::optional<nlohmann::json> Get(const std::string& key) const;  // one object, without copying the cache
  const std::string& kind() const { return kind_; }
  std::string last_error() const;

  // Test hooks: watch duration asked of the server; the client-side timeout adds a margin.
  void set_watch_seconds(int s) { watch_seconds_ = s; }

  static std::string KeyOf(const nlohmann::json& obj);

 private:
  enum class WatchEnd { kExpired, kRetry, kGone, kStopped };
  bool List(const std::atomic<bool>& stop);
  WatchEnd Watch(const std::atomic<bool>& stop);
  bool HandleEvent(std::string_view line, WatchEnd* end);
  void SetError(const std::string& e);
  void Sleep(const std::atomic<bool>& stop, double seconds);

  const Http* http_;
  const std::string kind_;
  const std::string path_;
  const std::function<void()> on_change_;
  mutable std::mutex mu_;
  Cache cache_;
  std::string resource_version_;
  std::string last_error_;
  std::atomic<bool> synced_{false};
  int watch_seconds_ = 300;
  int absent_recheck_seconds_ = 0;  // 0: required
  bool absent_ = false;             // Run()'s thread only
  double backoff_ = 0;
};

// Drops what the mesh never reads (managedFields, last-applied annotation) so caches stay small.
void TrimObject(nlohmann::json* obj);
// j[a][b] if it is a string, else "" (e.g. StrAt(obj, "metadata", "name")).
std::string StrAt(const nlohmann::json& j, const char* a, const char* b);

}  // namespace zm::k8s
