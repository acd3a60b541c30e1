// Per workload pair traffic from the agents' status reports (AgentStatus.traffic): totals and rates for the console's
// traffic graph. Thread-safe: the Status service records on gRPC threads, the console reads on its own.
//
// Counting each connection once: a connection between two nodes is counted by both proxies (reporter=source on the
// client's node, reporter=destination on the server's), a same-node one by the same proxy twice. A pair -- source
// workload, destination workload, source principal, mTLS -- takes the reporter=source counts when any agent reports
// them, which it does whenever the source is a mesh workload (its own proxy relayed the connection); otherwise (a
// plaintext client outside the mesh, its principal "unknown") the reporter=destination counts.
//
// Rates: per agent, the difference between its latest report and the one before, over the time between them. Reports
// closer than kMinRateWindow to the previous one (an extra report after a config change) update the totals and wait
// for the next one for rates, so a report 10 ms after the last one cannot turn 1 connection into 100/s. A counter that
// went down means the agent restarted: its new value is the delta. An agent whose latest report is older than
// kStaleAfter still counts in the totals, but at rate 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "zeromesh/v1/status.pb.h"

namespace zm::ctrl {

class TrafficStore {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxPairsPerReport = 1000;  // status.proto: AgentStatus.traffic; more are ignored
  static constexpr std::chrono::seconds kStaleAfter{30};
  static constexpr std::chrono::milliseconds kMinRateWindow{1000};

  void Record(const std::string& node, const zeromesh::v1::AgentStatus& report, Clock::time_point now);
  void Forget(const std::string& node);  // the agent is gone for good: its counts leave the totals

  struct Pair {
    std::string source;            // "ns/name"; "unknown" when not a mesh workload, "other" past an agent's label cap
    std::string destination;       // "ns/name"; "unknown" / "other" likewise
    std::string source_principal;  // SPIFFE ID, "unknown" when the connection carried no verified identity
    bool mtls = false;             // both ends had a verified identity (HBONE or a same-node relay between them)
    double connections_per_second = 0, bytes_per_second = 0;
    double errors_per_second = 0;    // policy denials (the only failures the agents attribute to a pair)
    uint64_t connections_total = 0;  // opened
    uint64_t bytes_total = 0;        // both directions
    uint64_t denials_total = 0;
  };
  // Every pair any agent reported, sorted by source, destination, principal.
  std::vector<Pair> Pairs(Clock::time_point now) const;

 private:
  struct Key {
    std::string source, destination, source_principal;
    bool mtls = false;
    auto operator<=>(const Key&) const = default;
  };
  struct Counts {
    uint64_t opened = 0, bytes = 0, denials = 0;
  };
  struct Rates {
    double opened = 0, bytes = 0, denials = 0;
  };
  struct Entry {
    Counts total;
    Rates rate;  // against the report before (zero for a first report)
  };
  struct Report {
    Clock::time_point at;
    std::map<Key, Entry> by_reporter[2];  // [0] reporter=source, [1] reporter=destination
  };
  struct Agent {
    Report rated;                 // the latest report at least kMinRateWindow after the one before it
    std::optional<Report> newer;  // a later report, too close to |rated| for rates (its totals are newer)
  };

  static Report Parse(const zeromesh::v1::AgentStatus& report, Clock::time_point now);
  static void RateAgainst(Report* now, const Report& before);

  mutable std::mutex mu_;
  std::map<std::string, Agent> agents_;  // by node
};

}  // namespace zm::ctrl
