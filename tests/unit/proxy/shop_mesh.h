// Mesh objects in the proxy tests' namespace "shop", the way the snapshot holds them: enrolled workloads and Services
// with one port and one endpoint.
#pragma once

#include <arpa/inet.h>

#include <string>

#include "agent/state/mesh_snapshot.h"

namespace zm::testing {

// An enrolled STRICT workload of namespace shop.
inline agent::Workload ShopWorkload(const char* name, const char* service_account, const char* ip, const char* node) {
  agent::Workload w;
  w.name = name;
  w.ns = "shop";
  w.service_account = service_account;
  w.ip = inet_addr(ip);
  w.node = node;
  w.enrolled = true;
  return w;
}

// A Service of namespace shop: |port| to one endpoint at |endpoint_ip| (a VIP of "" leaves the Service headless).
inline agent::Service ShopService(const char* name, const char* vip, agent::ServicePortMap port,
                                  const char* endpoint_ip, const std::string& endpoint_workload = "",
                                  const std::string& endpoint_node = "") {
  agent::Service s;
  s.name = name;
  s.ns = "shop";
  s.vip = vip[0] == '\0' ? 0 : inet_addr(vip);
  s.ports = {port};
  s.endpoints = {{inet_addr(endpoint_ip), endpoint_workload, endpoint_node}};
  return s;
}

}  // namespace zm::testing
