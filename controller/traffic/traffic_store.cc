#include "controller/traffic/traffic_store.h"

#include <algorithm>

namespace zm::ctrl {
namespace {

constexpr const char* kUnknown = "unknown";  // the agent's label for a side that is not a mesh workload
constexpr const char* kOther = "other";      // ... and for its overflow series past the label-set cap

std::string Workload(const std::string& ns, const std::string& name) {
  if (name.empty() || name == kUnknown || ns.empty() || ns == kUnknown) return kUnknown;
  if (name == kOther) return kOther;
  return ns + "/" + name;
}

bool Verified(const std::string& principal) {
  return !principal.empty() && principal != kUnknown && principal != kOther;
}

// A counter that went down belongs to a restarted agent: everything it counts now is new.
double Delta(uint64_t now, uint64_t before) {
  return static_cast<double>(now >= before ? now - before : now);
}

}  // namespace

TrafficStore::Report TrafficStore::Parse(const zeromesh::v1::AgentStatus& report, Clock::time_point now) {
  Report out;
  out.at = now;
  int n = std::min(report.traffic_size(), static_cast<int>(kMaxPairsPerReport));
  for (int i = 0; i < n; ++i) {
    const auto& t = report.traffic(i);
    int reporter;
    if (t.reporter() == "source") {
      reporter = 0;
    } else if (t.reporter() == "destination") {
      reporter = 1;
    } else {
      continue;  // not a side of the connection we can dedupe on
    }
    Key key{Workload(t.source_namespace(), t.source_workload()),
            Workload(t.destination_namespace(), t.destination_workload()),
            Verified(t.source_principal()) ? t.source_principal() : kUnknown,
            Verified(t.source_principal()) && Verified(t.destination_principal())};
    // Label sets that differ only in what the key leaves out (e.g. the destination's principal) add up.
    Counts& c = out.by_reporter[reporter][key].total;
    c.opened += t.connections_opened();
    c.bytes += t.bytes_sent() + t.bytes_received();
    c.denials += t.denials();
  }
  return out;
}

void TrafficStore::RateAgainst(Report* now, const Report& before) {
  double secs = std::chrono::duration<double>(now->at - before.at).count();
  if (secs <= 0) return;
  for (int r = 0; r < 2; ++r) {
    for (auto& [key, e] : now->by_reporter[r]) {
      Counts prev;  // a pair the report before did not have: all of it is new
      if (auto it = before.by_reporter[r].find(key); it != before.by_reporter[r].end()) prev = it->second.total;
      e.rate.opened = Delta(e.total.opened, prev.opened) / secs;
      e.rate.bytes = Delta(e.total.bytes, prev.bytes) / secs;
      e.rate.denials = Delta(e.total.denials, prev.denials) / secs;
    }
  }
}

void TrafficStore::Record(const std::string& node, const zeromesh::v1::AgentStatus& report, Clock::time_point now) {
  Report parsed = Parse(report, now);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = agents_.find(node);
  if (it == agents_.end()) {
    agents_.emplace(node, Agent{std::move(parsed), std::nullopt});
    return;
  }
  Agent& a = it->second;
  if (now - a.rated.at < kMinRateWindow) {
    a.newer = std::move(parsed);
    return;
  }
  RateAgainst(&parsed, a.rated);
  a.rated = std::move(parsed);
  a.newer.reset();
}

void TrafficStore::Forget(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  agents_.erase(node);
}

std::vector<TrafficStore::Pair> TrafficStore::Pairs(Clock::time_point now) const {
  std::map<Key, Entry> sum[2];  // by reporter, over every agent
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [node, a] : agents_) {
      const Report& latest = a.newer ? *a.newer : a.rated;
      bool fresh = now - latest.at <= kStaleAfter;
      for (int r = 0; r < 2; ++r) {
        for (const auto& [key, e] : latest.by_reporter[r]) {
          Entry& s = sum[r][key];
          s.total.opened += e.total.opened;
          s.total.bytes += e.total.bytes;
          s.total.denials += e.total.denials;
          if (!fresh) continue;
          auto rated = a.rated.by_reporter[r].find(key);
          if (rated == a.rated.by_reporter[r].end()) continue;
          s.rate.opened += rated->second.rate.opened;
          s.rate.bytes += rated->second.rate.bytes;
          s.rate.denials += rated->second.rate.denials;
        }
      }
    }
  }
  // The reporter=source counts of a pair when there are any, else the reporter=destination ones (see the header):
  // emplace keeps the first.
  std::map<Key, const Entry*> chosen;
  for (const auto& m : sum) {
    for (const auto& [key, e] : m) chosen.emplace(key, &e);
  }
  std::vector<Pair> out;
  out.reserve(chosen.size());
  for (const auto& [key, e] : chosen) {
    Pair p;
    p.source = key.source;
    p.destination = key.destination;
    p.source_principal = key.source_principal;
    p.mtls = key.mtls;
    p.connections_per_second = e->rate.opened;
    p.bytes_per_second = e->rate.bytes;
    p.errors_per_second = e->rate.denials;
    p.connections_total = e->total.opened;
    p.bytes_total = e->total.bytes;
    p.denials_total = e->total.denials;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace zm::ctrl
