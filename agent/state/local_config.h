// Local JSON configuration file: the agent's source of workloads and identities until the controller feeds the same
// structures. Format:
//   {"node":"node1","trustDomain":"cluster.local","mode":"STRICT","rootCert":"/path/root.pem",
//    "workloads":[{"name":"podA","namespace":"default","serviceAccount":"sa-a","ip":"10.244.1.11","node":"node1",
//                  "enrolled":true,"mode":"STRICT"}],
//    "identities":[{"spiffeId":"spiffe://cluster.local/ns/default/sa/sa-a","certChain":"a.crt","key":"a.key"}],
//    "services":[{"name":"web","namespace":"default","vip":"10.96.0.10","ports":[{"port":80,"targetPort":8080}],
//                 "endpoints":[{"ip":"10.244.1.11"}],"loadBalancer":{"algorithm":"RoundRobin"}}],
//    "tracing":{"samplingPercentage":10}}
// tracing.samplingPercentage (0..100, default 1) is MeshConfig's spec.tracing.samplingPercentage: the share of new
// traces the proxies sample when the agent has --otlp-endpoint.
// Service endpoints that are workload IPs take the workload's node and name unless given.
// Addresses may be IPv4 or IPv6. A dual-stack workload lists every address in "ips" (e.g. ["10.244.1.11",
// "fd00:10:244:1::b"], "ip" first or not at all), a dual-stack Service every cluster IP in "vips"; a dual-stack
// endpoint is one endpoint per address.
// Relative paths are relative to the config file's directory. Workload "mode" defaults to the mesh mode.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::agent {

struct LocalConfig {
  std::shared_ptr<const MeshSnapshot> snapshot;
  tls::CertList roots;
  std::vector<IdentityMaterial> identities;
};

// Parses and validates everything (including reading and checking PEM files). Errors read "<file>: <field>: <reason>".
bool LoadLocalConfig(const std::string& path, LocalConfig* out, std::string* error);
bool ParseLocalConfig(const std::string& json_text, const std::string& path, LocalConfig* out, std::string* error);

// Applies the file to a snapshot holder and a cert store; Reload() (e.g. on SIGHUP) keeps the last good config when
// the file is bad.
class LocalConfigSource {
 public:
  LocalConfigSource(std::string path, SnapshotHolder* snapshots, InMemoryCertStore* certs);
  bool Reload(std::string* error);

 private:
  std::string path_;
  SnapshotHolder* snapshots_;
  InMemoryCertStore* certs_;
  std::mutex mu_;
};

}  // namespace zm::agent
