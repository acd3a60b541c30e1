// What the agent knows about its local workloads' certificates: for /debug/certs and the expiry gauge.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::admin {

struct CertInfo {
  std::string identity;                // SPIFFE ID of an enrolled local workload
  std::vector<std::string> workloads;  // "namespace/name" of the local pods using it
  bool present = false;                // a certificate is loaded for it
  std::string serial;                  // hex
  int64_t not_before = 0;              // unix seconds
  int64_t not_after = 0;
  int64_t seconds_left = 0;  // not_after - now (negative once expired)
};

// One entry per identity of an enrolled workload on this node, sorted by identity.
std::vector<CertInfo> LocalCerts(const agent::MeshSnapshot* snap, const agent::CertStore& certs, int64_t now_unix);
std::optional<double> SoonestExpirySeconds(const std::vector<CertInfo>& certs);  // over present certificates
nlohmann::json CertsJson(const std::vector<CertInfo>& certs);

}  // namespace zm::admin
