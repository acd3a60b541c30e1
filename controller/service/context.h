// Everything the gRPC services share. Owned by Controller; services only borrow.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "controller/agent_registry.h"
#include "controller/auth/agent_auth.h"
#include "controller/ca/reloading_authority.h"
#include "controller/config/push_parts.h"
#include "controller/config/store.h"
#include "controller/metrics/controller_metrics.h"
#include "controller/service/full_push_gate.h"

namespace zm::ctrl {

constexpr const char* kControllerVersion = "0.1.0";
constexpr const char* kServerName = "mesh-controller.zeromesh";  // DNS SAN agents verify (target name override)

struct ServiceContext {
  ConfigStore* store = nullptr;
  const ca::ReloadingAuthority* ca = nullptr;
  const AgentAuthenticator* auth = nullptr;
  AgentRegistry* agents = nullptr;
  ControllerMetrics* metrics = nullptr;
  uint32_t max_cert_ttl_seconds = 86400;
  size_t push_part_bytes = kPushPartBytes;  // ConfigPush parts
  FullPushGate* full_pushes = nullptr;      // bounds concurrent full snapshots (nullptr: no bound)
  std::string manifests_dir;
  int64_t started_unix = 0;
  std::atomic<bool> stopping{false};
  // Set by the controller: the serving certificate's expiry and the trust-chain problems it can see (meshctl status).
  std::function<int64_t()> serving_cert_not_after;
  std::function<std::vector<std::string>()> security_problems;
  // "" while this replica serves agents (the leader, or no leader election); else why not ("standby: the lease ... is
  // held by ..."). A standby knows no agent, so its operator port refuses Get/Resources with this text.
  std::function<std::string()> standby;
};

}  // namespace zm::ctrl
