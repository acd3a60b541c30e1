#include "controller/k8s/leader_election.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <random>

#include "common/log.h"

namespace zm::k8s {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

std::string Ms(milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + "s" : std::to_string(d.count()) + "ms";
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
  return s.substr(i);
}

// Whole seconds for the per-request timeout of Http::Request (at least 1).
int TimeoutSeconds(steady_clock::duration d) {
  auto ms = std::chrono::duration_cast<milliseconds>(d).count();
  return static_cast<int>(std::max<int64_t>(1, (ms + 999) / 1000));
}

}  // namespace

bool ValidateLeaderElection(const LeaderElectionConfig& c, std::string* error) {
  if (c.retry_period.count() <= 0 || c.renew_deadline.count() <= 0 || c.lease_duration.count() <= 0) {
    *error = "leader election durations must be positive";
    return false;
  }
  if (c.lease_duration.count() % 1000 != 0) {
    *error = "--leader-elect-lease-duration (" + Ms(c.lease_duration) +
             ") must be whole seconds (the Lease's leaseDurationSeconds is an integer)";
    return false;
  }
  if (c.retry_period >= c.renew_deadline) {
    *error = "--leader-elect-retry-period (" + Ms(c.retry_period) +
             ") must be shorter than --leader-elect-renew-deadline (" + Ms(c.renew_deadline) + ")";
    return false;
  }
  if (c.renew_deadline >= c.lease_duration) {
    *error = "--leader-elect-renew-deadline (" + Ms(c.renew_deadline) +
             ") must be shorter than --leader-elect-lease-duration (" + Ms(c.lease_duration) + ")";
    return false;
  }
  if (c.renew_deadline + c.retry_period > c.lease_duration) {
    *error = "--leader-elect-renew-deadline + --leader-elect-retry-period (" + Ms(c.renew_deadline + c.retry_period) +
             ") must not exceed --leader-elect-lease-duration (" + Ms(c.lease_duration) +
             "): a standby may take over up to one retry period before the lease duration has passed, and a leader "
             "that cannot renew must have given up by then";
    return false;
  }
  if (c.lease_name.empty() || c.lease_namespace.empty() || c.identity.empty()) {
    *error = "leader election needs a lease name, a namespace and an identity";
    return false;
  }
  return true;
}

std::optional<milliseconds> ParseLeaderDuration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) i++;
    if (i == start) return std::nullopt;
    std::string num = s.substr(start, i - start);
    if (std::count(num.begin(), num.end(), '.') > 1 || num == ".") return std::nullopt;
    double v = std::strtod(num.c_str(), nullptr);
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) i++;
    std::string unit = s.substr(ustart, i - ustart);
    if (unit == "ms") {
      total += v;
    } else if (unit == "s") {
      total += v * 1000;
    } else if (unit == "m") {
      total += v * 60000;
    } else if (unit == "h") {
      total += v * 3600000;
    } else {
      return std::nullopt;
    }
  }
  if (total < 1 || total > 24.0 * 3600000) return std::nullopt;
  return milliseconds(static_cast<int64_t>(total + 0.5));
}

std::string DefaultLeaseNamespace(const std::string& sa_namespace_file) {
  if (const char* ns = std::getenv("POD_NAMESPACE"); ns && *ns) return ns;
  std::ifstream f(sa_namespace_file);
  std::string ns;
  if (f && std::getline(f, ns) && !Trim(ns).empty()) return Trim(ns);
  return "zeromesh-system";
}

std::string DefaultLeaderIdentity() {
  std::string base;
  if (const char* p = std::getenv("POD_NAME"); p && *p) {
    base = p;
  } else {
    char host[256] = {};
    base = gethostname(host, sizeof(host) - 1) == 0 && host[0] ? host : "mesh-controller";
  }
  std::random_device rd;
  static const char* kHex = "0123456789abcdef";
  std::string suffix;
  for (int i = 0; i < 8; i++) suffix += kHex[rd() & 15];
  return base + "_" + suffix;
}

std::string FormatMicroTime(system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  int64_t secs = us / 1000000, frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs--;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(frac));
  return out;
}

std::optional<system_clock::time_point> ParseMicroTime(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  if (s.size() < 20) return std::nullopt;
  auto digits = [&](size_t pos, size_t n, int* out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; i++) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  std::tm tm{};
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, &year) || s[4] != '-' || !digits(5, 2, &mon) || s[7] != '-' || !digits(8, 2, &day) ||
      (s[10] != 'T' && s[10] != 't') || !digits(11, 2, &hour) || s[13] != ':' || !digits(14, 2, &min) || s[16] != ':' ||
      !digits(17, 2, &sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return std::nullopt;
  size_t i = 19;
  int64_t micros = 0;
  if (i < s.size() && s[i] == '.') {
    i++;
    size_t start = i;
    int64_t scale = 100000;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      micros += (s[i] - '0') * scale;
      scale /= 10;
      i++;
    }
    if (i == start) return std::nullopt;
  }
  int offset_sec = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!digits(i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(i + 4, 2, &om)) return std::nullopt;
    offset_sec = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  int64_t epoch = static_cast<int64_t>(timegm(&tm)) - offset_sec;
  return system_clock::time_point(
      std::chrono::duration_cast<system_clock::duration>(std::chrono::microseconds(epoch * 1000000 + micros)));
}

LeaseRecord LeaseRecordFromJson(const json& lease) {
  LeaseRecord r;
  if (!lease.is_object() || !lease.contains("spec") || !lease["spec"].is_object()) return r;
  const json& s = lease["spec"];
  if (s.contains("holderIdentity") && s["holderIdentity"].is_string()) r.holder = s["holderIdentity"];
  if (s.contains("leaseDurationSeconds") && s["leaseDurationSeconds"].is_number_integer()) {
    r.lease_duration_seconds = s["leaseDurationSeconds"];
  }
  if (s.contains("leaseTransitions") && s["leaseTransitions"].is_number_integer())
    r.lease_transitions = s["leaseTransitions"];
  if (s.contains("acquireTime") && s["acquireTime"].is_string()) r.acquire_time = ParseMicroTime(s["acquireTime"]);
  if (s.contains("renewTime") && s["renewTime"].is_string()) r.renew_time = ParseMicroTime(s["renewTime"]);
  return r;
}

json LeaseSpecJson(const LeaseRecord& r) {
  json s = {{"holderIdentity", r.holder},
            {"leaseDurationSeconds", r.lease_duration_seconds},
            {"leaseTransitions", r.lease_transitions}};
  if (r.acquire_time) s["acquireTime"] = FormatMicroTime(*r.acquire_time);
  if (r.renew_time) s["renewTime"] = FormatMicroTime(*r.renew_time);
  return s;
}

steady_clock::time_point LeaseExpiry(steady_clock::time_point observed_at, system_clock::time_point observed_wall,
                                     const LeaseRecord& record, milliseconds lease_duration,
                                     milliseconds retry_period) {
  steady_clock::duration lag{0};
  if (record.renew_time) {
    lag = std::clamp<steady_clock::duration>(
        std::chrono::duration_cast<steady_clock::duration>(observed_wall - *record.renew_time),
        steady_clock::duration(0), std::chrono::duration_cast<steady_clock::duration>(retry_period));
  }
  return observed_at + lease_duration - lag;
}

// ---- LeaderElector -----------------------------------------------------------------------------------------------

LeaderElector::LeaderElector(ClientConfig config, LeaderElectionConfig lec, Callbacks callbacks)
    : http_(std::move(config)), lec_(std::move(lec)), cb_(std::move(callbacks)) {
  path_ = "/apis/coordination.k8s.io/v1/namespaces/" + lec_.lease_namespace + "/leases/" + lec_.lease_name;
}

LeaderElector::~LeaderElector() {
  Stop();
}

void LeaderElector::Start() {
  log::Info("leader election started", {{"lease", LeaseRef()},
                                        {"identity", lec_.identity},
                                        {"lease_duration", Ms(lec_.lease_duration)},
                                        {"renew_deadline", Ms(lec_.renew_deadline)},
                                        {"retry_period", Ms(lec_.retry_period)}});
  thread_ = std::thread([this] { Loop(); });
}

void LeaderElector::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string LeaderElector::holder() const {
  std::lock_guard<std::mutex> lock(mu_);
  return holder_;
}

void LeaderElector::SetHolder(const std::string& h) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    holder_ = h;
  }
  if (h != last_logged_holder_) {
    if (h != lec_.identity) {
      log::Info("lease holder observed", {{"lease", LeaseRef()}, {"holder", h}, {"identity", lec_.identity}});
    }
    last_logged_holder_ = h;
  }
}

json LeaderElector::Describe() const {
  return {{"lease", LeaseRef()},
          {"identity", lec_.identity},
          {"leading", leading()},
          {"holder", holder()},
          {"transitions", transitions()},
          {"lease_duration_ms", lec_.lease_duration.count()},
          {"renew_deadline_ms", lec_.renew_deadline.count()},
          {"retry_period_ms", lec_.retry_period.count()}};
}

void LeaderElector::Observe(const json& lease, const LeaseRecord& r) {
  if (!have_observed_ || r != observed_) {
    observed_ = r;
    observed_at_ = steady_clock::now();
    milliseconds d =
        r.lease_duration_seconds > 0 ? milliseconds(int64_t{r.lease_duration_seconds} * 1000) : lec_.lease_duration;
    expiry_ = LeaseExpiry(observed_at_, system_clock::now(), r, d, lec_.retry_period);
  }
  observed_lease_ = lease;
  have_observed_ = true;
  SetHolder(r.holder);
}

LeaderElector::Attempt LeaderElector::TryAcquireOrRenew() {
  const int timeout = TimeoutSeconds(leading_ ? lec_.renew_deadline : lec_.retry_period);
  auto now_wall = system_clock::now();
  auto put = [&](const LeaseRecord& r) {
    json body = observed_lease_;
    body["spec"] = LeaseSpecJson(r);
    return http_.Request("PUT", path_, body.dump(), "application/json", timeout);
  };
  auto mine = [&](LeaseRecord r) {
    if (r.holder != lec_.identity) {
      r.lease_transitions++;  // as client-go: every change of holder counts, a takeover after a release too
      r.acquire_time = now_wall;
    }
    r.holder = lec_.identity;
    r.lease_duration_seconds = static_cast<int>(lec_.lease_duration.count() / 1000);
    r.renew_time = now_wall;
    return r;
  };
  auto accept = [&](const HttpResponse& resp) {
    json j = json::parse(resp.body, nullptr, false);
    if (!j.is_object()) return false;
    Observe(j, LeaseRecordFromJson(j));
    return true;
  };

  // Fast path while leading: update the Lease we wrote last (its resourceVersion); a 409 falls back to a GET.
  if (leading_ && have_observed_ && observed_.holder == lec_.identity) {
    HttpResponse r = put(mine(observed_));
    if (r.ok() && accept(r)) return Attempt::kAcquired;
    if (r.status != 409) {
      log::Warn("cannot renew the lease", {{"lease", LeaseRef()}, {"error", r.Describe()}});
      return Attempt::kFailed;
    }
  }

  HttpResponse got = http_.Request("GET", path_, "", "", timeout);
  if (got.status == 404) {
    LeaseRecord r = mine(LeaseRecord{});
    r.lease_transitions = 0;
    json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", lec_.lease_name}, {"namespace", lec_.lease_namespace}}},
                  {"spec", LeaseSpecJson(r)}};
    std::string collection = path_.substr(0, path_.rfind('/'));
    HttpResponse c = http_.Request("POST", collection, lease.dump(), "application/json", timeout);
    if (c.ok() && accept(c)) return Attempt::kAcquired;
    if (c.status != 409) log::Warn("cannot create the lease", {{"lease", LeaseRef()}, {"error", c.Describe()}});
    return Attempt::kFailed;  // 409: another replica created it first; the next attempt reads it
  }
  if (!got.ok()) {
    log::Warn("cannot read the lease", {{"lease", LeaseRef()}, {"error", got.Describe()}});
    return Attempt::kFailed;
  }
  json j = json::parse(got.body, nullptr, false);
  if (!j.is_object()) {
    log::Warn("cannot parse the lease", {{"lease", LeaseRef()}});
    return Attempt::kFailed;
  }
  LeaseRecord current = LeaseRecordFromJson(j);
  Observe(j, current);
  if (!current.holder.empty() && current.holder != lec_.identity && (leading_ || steady_clock::now() < expiry_)) {
    return Attempt::kHeldByOther;
  }
  HttpResponse p = put(mine(current));
  if (p.ok() && accept(p)) return Attempt::kAcquired;
  if (p.status == 409) {
    log::Info("lost the race for the lease", {{"lease", LeaseRef()}});
  } else {
    log::Warn("cannot update the lease", {{"lease", LeaseRef()}, {"error", p.Describe()}});
  }
  return Attempt::kFailed;
}

void LeaderElector::Loop() {
  auto last_renew = steady_clock::time_point{};
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    auto attempt_start = steady_clock::now();
    Attempt a = TryAcquireOrRenew();
    auto now = steady_clock::now();
    steady_clock::time_point next = now + lec_.retry_period;
    if (!leading_) {
      if (a == Attempt::kAcquired) {
        leading_ = true;
        transitions_++;
        last_renew = attempt_start;
        log::Info(
            "became leader",
            {{"lease", LeaseRef()}, {"identity", lec_.identity}, {"lease_transitions", observed_.lease_transitions}});
        if (cb_.started_leading) cb_.started_leading();
        next = attempt_start + lec_.retry_period;
      } else if (a == Attempt::kHeldByOther) {
        next = std::min(next, expiry_);  // poll right when the holder's lease runs out
      }
    } else if (a == Attempt::kAcquired) {
      last_renew = attempt_start;
      next = attempt_start + lec_.retry_period;
    } else {
      std::string reason;
      if (a == Attempt::kHeldByOther) {
        reason = "the lease " + LeaseRef() + " is now held by " + observed_.holder;
      } else if (now - last_renew >= lec_.renew_deadline) {
        reason =
            "could not renew the lease " + LeaseRef() + " within the renew deadline (" + Ms(lec_.renew_deadline) + ")";
      }
      if (!reason.empty()) {
        leading_ = false;
        transitions_++;
        log::Error("leader election lost", {{"lease", LeaseRef()}, {"identity", lec_.identity}, {"reason", reason}});
        if (cb_.stopped_leading) cb_.stopped_leading(reason);
        return;
      }
      next = std::min(next, last_renew + lec_.renew_deadline);
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, next, [this] { return stop_; });
  }
  if (leading_) Release();
}

void LeaderElector::Release() {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (!have_observed_ || observed_.holder != lec_.identity) return;
    auto now = system_clock::now();
    LeaseRecord r;
    r.lease_transitions = observed_.lease_transitions;
    r.lease_duration_seconds = 1;
    r.acquire_time = now;
    r.renew_time = now;
    json body = observed_lease_;
    body["spec"] = LeaseSpecJson(r);
    HttpResponse p = http_.Request("PUT", path_, body.dump(), "application/json", 5);
    if (p.ok()) {
      leading_ = false;
      transitions_++;
      SetHolder("");
      log::Info("lease released", {{"lease", LeaseRef()}, {"identity", lec_.identity}});
      return;
    }
    if (p.status != 409) {
      log::Warn("cannot release the lease", {{"lease", LeaseRef()}, {"error", p.Describe()}});
      return;
    }
    HttpResponse got = http_.Request("GET", path_, "", "", 5);  // conflict: re-read, release if still ours
    json j = json::parse(got.body, nullptr, false);
    if (!got.ok() || !j.is_object()) return;
    Observe(j, LeaseRecordFromJson(j));
  }
}

}  // namespace zm::k8s
