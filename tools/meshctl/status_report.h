// `meshctl status` and the console overview: turn what the controller knows (MeshStatus + its resources) into one
// report with a list of problems, each with a one-line fix hint. Pure functions of their input (and `now`), so tests
// can seed faults.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "zeromesh/v1/status.pb.h"

namespace zm::meshctl {

struct StatusInput {
  std::string controller;        // address, for messages
  std::string unreachable_hint;  // the fix to suggest when the controller cannot be reached ("": check the flags)
  bool reachable = false;
  std::string error;  // why not
  zeromesh::v1::MeshStatus status;
  zeromesh::v1::ResourceSet resources;
  int64_t now_unix = 0;
  int64_t cert_warn_seconds = 3600;  // certificates expiring sooner are problems
  // The CA, trust roots and join tokens: long-lived, replaced by hand, so warned about well ahead.
  int64_t credential_warn_seconds = 30LL * 86400;
  int64_t stale_seconds = 45;  // agents report every 10 s; silence this long means the agent is gone
};

// {healthy, problems: [{message, hint, node?}], controller: {...}, mesh: {...}, agents: [...],
//  enrolled_pods_by_namespace: {ns: n}, soonest_cert_expiry: {...} | null}
nlohmann::json BuildStatus(const StatusInput& in);
std::string RenderStatus(const nlohmann::json& report);  // the human form, <= 100 columns

}  // namespace zm::meshctl
