// Everything the gRPC services share. Owned by Controller; services only borrow.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "controller/agent_registry.h"
#include "controller/auth/agent_auth.h"
#include "controller/ca/authority.h"
#include "controller/config/store.h"
#include "controller/metrics/controller_metrics.h"

namespace zm::ctrl {

constexpr const char* kControllerVersion = "0.1.0";

struct ServiceContext {
  ConfigStore* store = nullptr;
  const ca::Authority* ca = nullptr;
  const AgentAuthenticator* auth = nullptr;
  AgentRegistry* agents = nullptr;
  ControllerMetrics* metrics = nullptr;
  uint32_t max_cert_ttl_seconds = 86400;
  std::string manifests_dir;
  int64_t started_unix = 0;
  std::atomic<bool> stopping{false};
};

}  // namespace zm::ctrl
