// /debug/config_dump: what the agent runs with right now, as JSON.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agent/admin/cert_info.h"
#include "agent/bpf/bpf_manager.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::admin {

struct ConfigDumpInput {
  const agent::MeshSnapshot* snapshot = nullptr;
  uint64_t config_version = 0;
  std::vector<CertInfo> identities;
  std::vector<agent::bpf::Attachment> attachments;
  std::optional<agent::bpf::CaptureStats> capture;
  bool listeners[3] = {false, false, false};   // outbound, hbone, plaintext slots of the SOCKMAP
  bool listeners6[3] = {false, false, false};  // the same slots of zm_listeners6 (IPv6; empty on a node without it)
  std::string pin_dir;
  bool ready = false;
  nlohmann::json services = nlohmann::json::array();  // agent/traffic/dump.h
};

nlohmann::json ConfigDump(const ConfigDumpInput& in);
nlohmann::json WorkloadJson(const agent::MeshSnapshot& snap, const agent::Workload& w);

}  // namespace zm::admin
