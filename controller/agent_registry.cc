#include "controller/agent_registry.h"

#include <chrono>
#include <ctime>

namespace zm::ctrl {

void AgentRegistry::StreamOpened(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& e = agents_[node];
  e.streams++;
  e.state.set_node(node);
  e.state.set_connected(true);
}

void AgentRegistry::StreamClosed(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& e = agents_[node];
  if (e.streams > 0) e.streams--;
  e.state.set_connected(e.streams > 0);
}

void AgentRegistry::Sent(const std::string& node, uint64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  agents_[node].state.set_sent_version(version);
}

void AgentRegistry::Acked(const std::string& node, uint64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& s = agents_[node].state;
  s.set_acked_version(version);
  if (version >= s.nacked_version()) s.clear_nack_error();  // a later ACK supersedes an old NACK
}

void AgentRegistry::Nacked(const std::string& node, uint64_t version, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& s = agents_[node].state;
  s.set_nacked_version(version);
  s.set_nack_error(error);
}

void AgentRegistry::Reported(const std::string& node, const zeromesh::v1::AgentStatus& status) {
  traffic_.Record(node, status, std::chrono::steady_clock::now());
  std::lock_guard<std::mutex> lock(mu_);
  auto& s = agents_[node].state;
  s.set_node(node);
  *s.mutable_last_report() = status;
  s.mutable_last_report()->set_node(node);  // the authenticated node, not the claimed one
  s.set_last_report_unix(std::time(nullptr));
}

std::vector<zeromesh::v1::AgentState> AgentRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<zeromesh::v1::AgentState> out;
  for (const auto& [node, e] : agents_) out.push_back(e.state);
  return out;
}

zeromesh::v1::AgentState AgentRegistry::Get(const std::string& node) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = agents_.find(node);
  return it == agents_.end() ? zeromesh::v1::AgentState() : it->second.state;
}

}  // namespace zm::ctrl
