// What the controller knows about each agent: config stream state and the last status report, and from the reports
// the traffic between workload pairs (controller/traffic/traffic_store.h, for the console).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "controller/traffic/traffic_store.h"
#include "zeromesh/v1/status.pb.h"

namespace zm::ctrl {

class AgentRegistry {
 public:
  void StreamOpened(const std::string& node);
  void StreamClosed(const std::string& node);
  void Sent(const std::string& node, uint64_t version);
  void Acked(const std::string& node, uint64_t version);
  void Nacked(const std::string& node, uint64_t version, const std::string& error);
  void Reported(const std::string& node, const zeromesh::v1::AgentStatus& status);

  std::vector<zeromesh::v1::AgentState> List() const;
  zeromesh::v1::AgentState Get(const std::string& node) const;
  const TrafficStore& traffic() const { return traffic_; }

 private:
  struct Entry {
    int streams = 0;  // a reconnecting agent may briefly have two
    zeromesh::v1::AgentState state;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> agents_;
  TrafficStore traffic_;  // thread-safe on its own
};

}  // namespace zm::ctrl
