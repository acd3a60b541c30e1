// The Services part of /debug/config_dump: configuration from the snapshot plus the balancer's live view.
#pragma once

#include <nlohmann/json.hpp>

#include "agent/state/mesh_snapshot.h"
#include "agent/traffic/balancer.h"
#include "agent/traffic/rate_limiter.h"

namespace zm::traffic {

// |lb| and |limiter| may be nullptr (no proxy running): configuration only.
nlohmann::json ServicesJson(const agent::MeshSnapshot& snap, Balancer* lb, const RateLimiter* limiter = nullptr);

}  // namespace zm::traffic
