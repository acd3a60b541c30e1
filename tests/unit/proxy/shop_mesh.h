// Mesh objects in the proxy tests' namespace "shop", the way the snapshot holds them (enrolled workloads, Services
// with one port and one endpoint), and a connection between two of them as the destination proxy sees it.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "agent/proxy/inbound_http.h"
#include "agent/proxy/socket_util.h"
#include "agent/state/mesh_snapshot.h"
#include "common/net/ip_addr.h"
#include "common/tls/spiffe.h"

namespace zm::testing {

// A literal of the tests (either family); a typo aborts.
inline net::IpAddr ShopIp(const char* text) {
  auto ip = net::IpAddr::Parse(text);
  if (!ip) abort();
  return *ip;
}

// An enrolled STRICT workload of namespace shop.
inline agent::Workload ShopWorkload(const char* name, const char* service_account, const char* ip, const char* node) {
  agent::Workload w;
  w.name = name;
  w.ns = "shop";
  w.service_account = service_account;
  w.ips = {ShopIp(ip)};
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
  if (vip[0] != '\0') s.vips = {ShopIp(vip)};
  s.ports = {port};
  s.endpoints = {{ShopIp(endpoint_ip), endpoint_workload, endpoint_node}};
  return s;
}

// What the destination proxy knows of a connection from shop/client (10.244.2.5, service account client, a verified
// peer) to the pod 10.244.1.7:|pod_port| of |snap|; |enforce|: its requests are decided one by one.
inline proxy::InboundHttp::Params ShopClientToPod(std::shared_ptr<const agent::MeshSnapshot> snap, uint16_t pod_port,
                                                  bool enforce) {
  proxy::InboundHttp::Params params;
  params.snap = std::move(snap);
  params.destination = params.snap->Find(ShopIp("10.244.1.7"));
  params.has_source_id = true;
  std::string err;
  if (!tls::ParseSpiffeId("spiffe://cluster.local/ns/shop/sa/client", &params.source_id, &err)) abort();
  params.src = net::SockAddr{ShopIp("10.244.2.5"), 40000};
  params.dst = net::SockAddr{ShopIp("10.244.1.7"), pod_port};
  params.what = "test";
  params.enforce = enforce;
  return params;
}

}  // namespace zm::testing
