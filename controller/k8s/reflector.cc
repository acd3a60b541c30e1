#include "controller/k8s/reflector.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "common/log.h"
#include "common/percent_encode.h"
#include "controller/k8s/pod_fields.h"

namespace zm::k8s {

std::string StrAt(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b) || !j[a][b].is_string()) return "";
  return j[a][b].get<std::string>();
}

void TrimObject(nlohmann::json* obj) {
  if (!obj->is_object() || !obj->contains("metadata") || !(*obj)["metadata"].is_object()) return;
  auto& meta = (*obj)["metadata"];
  meta.erase("managedFields");
  if (meta.contains("annotations") && meta["annotations"].is_object()) {
    meta["annotations"].erase("kubectl.kubernetes.io/last-applied-configuration");
  }
}

std::string Reflector::KeyOf(const nlohmann::json& obj) {
  return StrAt(obj, "metadata", "namespace") + "/" + StrAt(obj, "metadata", "name");
}

Reflector::Reflector(const Http* http, std::string kind, std::string path, std::function<void()> on_change)
    : http_(http), kind_(std::move(kind)), path_(std::move(path)), on_change_(std::move(on_change)) {}

Reflector::Cache Reflector::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_;
}

std::optional<nlohmann::json> Reflector::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::string Reflector::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void Reflector::SetError(const std::string& e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = e;
  }
  static thread_local std::mt19937 rng{std::random_device{}()};
  backoff_ = std::min(30.0, std::max(0.5, backoff_ * 2));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  backoff_ *= jitter(rng);
  log::Warn("kubernetes list/watch failed; retrying",
            {{"kind", kind_}, {"error", e}, {"retry_in_ms", static_cast<int>(backoff_ * 1000)}});
}

void Reflector::Sleep(const std::atomic<bool>& stop, double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(seconds * 1000));
  while (!stop.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

bool Reflector::List(const std::atomic<bool>& stop) {
  Cache fresh;
  std::string cont, rv;
  do {
    // The first list may come from the API server's watch cache (resourceVersion=0: no etcd read, as client-go's
    // informers start); the watch from its resourceVersion catches up. A relist (410 Gone, errors) reads the latest.
    const bool from_cache = !synced_.load() && cont.empty();
    std::string path = path_ + "?limit=500" + (from_cache ? "&resourceVersion=0" : "") +
                       (cont.empty() ? "" : "&continue=" + PercentEncode(cont, UrlUnreserved));
    HttpResponse r = http_->Request("GET", path, "", "", 60);
    if (stop.load()) return false;
    if (r.status == 404 && absent_recheck_seconds_ > 0) {
      if (!absent_) {
        log::Info("kubernetes API not installed; treated as empty",
                  {{"kind", kind_}, {"path", path_}, {"recheck_seconds", absent_recheck_seconds_}});
      }
      bool had_objects;
      {
        std::lock_guard<std::mutex> lock(mu_);
        had_objects = !cache_.empty();
        cache_.clear();
        resource_version_.clear();
        last_error_.clear();
      }
      absent_ = true;
      backoff_ = 0;
      if (!synced_.exchange(true) || had_objects) on_change_();
      return true;
    }
    if (!r.ok()) {
      std::string hint = r.status == 404   ? " (is the CustomResourceDefinition installed?)"
                         : r.status == 403 ? " (RBAC: the controller's ServiceAccount may not list this)"
                                           : "";
      SetError("list " + path_ + ": " + r.Describe() + hint);
      return false;
    }
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("items") || !(j["items"].is_array() || j["items"].is_null())) {
      SetError("list " + path_ + ": the response is not a Kubernetes list");
      return false;
    }
    if (j["items"].is_array()) {
      for (auto& item : j["items"]) {
        TrimObject(&item);
        if (kind_ == "Pod") TrimPod(&item);
        std::string key = KeyOf(item);  // before the move: json::operator= takes its argument by value
        fresh[key] = std::move(item);
      }
    }
    rv = StrAt(j, "metadata", "resourceVersion");
    cont = StrAt(j, "metadata", "continue");
  } while (!cont.empty());
  size_t count = fresh.size();
  if (absent_) log::Info("kubernetes API now installed", {{"kind", kind_}, {"path", path_}});
  absent_ = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cache_ = std::move(fresh);
    resource_version_ = rv;
    last_error_.clear();
  }
  backoff_ = 0;
  bool first = !synced_.exchange(true);
  log::Info(first ? "kubernetes cache synced" : "kubernetes cache relisted",
            {{"kind", kind_}, {"objects", count}, {"resourceVersion", rv}});
  on_change_();
  return true;
}

bool Reflector::HandleEvent(std::string_view line, WatchEnd* end) {
  auto ev = nlohmann::json::parse(line, nullptr, false);
  if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string() || !ev.contains("object") ||
      !ev["object"].is_object()) {
    SetError("watch " + path_ + ": malformed event");
    *end = WatchEnd::kRetry;
    return false;
  }
  std::string type = ev["type"].get<std::string>();
  nlohmann::json& obj = ev["object"];
  if (type == "ERROR") {
    int code = obj.contains("code") && obj["code"].is_number_integer() ? obj["code"].get<int>() : 0;
    if (code == 410) {
      *end = WatchEnd::kGone;
    } else {
      std::string msg = obj.contains("message") && obj["message"].is_string() ? obj["message"].get<std::string>() : "";
      SetError("watch " + path_ + ": error event " + std::to_string(code) + ": " + msg);
      *end = WatchEnd::kRetry;
    }
    return false;
  }
  std::string rv = StrAt(obj, "metadata", "resourceVersion");
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!rv.empty()) resource_version_ = rv;
    if (type == "ADDED" || type == "MODIFIED") {
      TrimObject(&obj);
      if (kind_ == "Pod") TrimPod(&obj);
      std::string key = KeyOf(obj);  // before the move: json::operator= takes its argument by value
      cache_[key] = std::move(obj);
      changed = true;
    } else if (type == "DELETED") {
      changed = cache_.erase(KeyOf(obj)) > 0;
    }  // BOOKMARK: only the resourceVersion moves
  }
  backoff_ = 0;
  if (changed) on_change_();
  return true;
}

Reflector::WatchEnd Reflector::Watch(const std::atomic<bool>& stop) {
  std::string rv;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rv = resource_version_;
  }
  std::string path = path_ + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + PercentEncode(rv, UrlUnreserved) +
                     "&timeoutSeconds=" + std::to_string(watch_seconds_);
  WatchEnd end = WatchEnd::kExpired;
  HttpResponse r = http_->Stream(
      path, watch_seconds_ + 30, [&](std::string_view line) { return HandleEvent(line, &end); }, &stop);
  if (stop.load()) return WatchEnd::kStopped;
  if (end != WatchEnd::kExpired) return end;
  if (r.status == 410) return WatchEnd::kGone;
  if (!r.ok()) {
    SetError("watch " + path_ + ": " + r.Describe());
    return WatchEnd::kRetry;
  }
  return WatchEnd::kExpired;  // the server closed the watch after timeoutSeconds: resume from the last version
}

void Reflector::Run(const std::atomic<bool>& stop) {
  bool need_list = true;
  while (!stop.load()) {
    if (need_list) {
      if (!List(stop)) {
        Sleep(stop, backoff_);
        continue;
      }
      need_list = false;
    }
    if (absent_) {  // nothing to watch: look again later
      Sleep(stop, absent_recheck_seconds_);
      need_list = true;
      continue;
    }
    auto started = std::chrono::steady_clock::now();
    WatchEnd end = Watch(stop);
    switch (end) {
      case WatchEnd::kStopped:
        return;
      case WatchEnd::kGone:
        log::Info("kubernetes watch expired (410 Gone): relisting", {{"kind", kind_}});
        need_list = true;
        break;
      case WatchEnd::kRetry:
        Sleep(stop, backoff_);
        break;
      case WatchEnd::kExpired:
        // A server (or proxy) that keeps closing watches at once must not make this a busy loop.
        if (std::chrono::steady_clock::now() - started < std::chrono::seconds(1)) Sleep(stop, 1.0);
        break;
    }
  }
}

}  // namespace zm::k8s
