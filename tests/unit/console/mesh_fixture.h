// A small mesh for the console tests: namespace shop (frontend, backend-v1, backend-v2 behind Service backend with a
// 90/10 TCPRoute), namespace legacy (legacy-client, not enrolled), STRICT, default ALLOW.
#pragma once

#include <string>

#include "controller/console/mesh_inputs.h"

namespace zm::ctrl::console::testing {

namespace v1 = zeromesh::v1;

inline v1::Workload* AddWorkload(v1::ResourceSet& rs, const std::string& ns, const std::string& name,
                                 const std::string& ip, bool enrolled, const std::string& app) {
  auto* w = rs.add_resources()->mutable_workload();
  w->set_namespace_(ns);
  w->set_name(name);
  w->set_service_account(name.substr(0, name.find("-v")));
  w->set_node("node1");
  w->set_ip(ip);
  w->set_enrolled(enrolled);
  (*w->mutable_labels())["app"] = app;
  return w;
}

inline v1::Service* AddService(v1::ResourceSet& rs, const std::string& name, const std::string& vip,
                               std::initializer_list<std::pair<const char*, const char*>> endpoints) {
  auto* s = rs.add_resources()->mutable_service();
  s->set_namespace_("shop");
  s->set_name(name);
  s->set_vip(vip);
  auto* p = s->add_ports();
  p->set_name("http");
  p->set_port(80);
  p->set_target_port(8080);
  for (const auto& [ip, workload] : endpoints) {
    auto* e = s->add_endpoints();
    e->set_ip(ip);
    e->set_workload(workload);
    e->set_node("node1");
  }
  return s;
}

inline MeshInputs SmallMesh() {
  MeshInputs in;
  v1::ResourceSet& rs = in.resources;
  rs.set_version(3);
  rs.set_epoch("e1");
  auto* mc = rs.add_resources()->mutable_mesh_config();
  mc->set_name("default");
  mc->set_trust_domain("cluster.local");
  mc->set_default_mode(v1::STRICT);
  mc->set_default_policy(v1::ALLOW);
  AddWorkload(rs, "shop", "frontend", "10.1.0.2", true, "frontend");
  AddWorkload(rs, "shop", "backend-v1", "10.1.0.3", true, "backend");
  AddWorkload(rs, "shop", "backend-v2", "10.1.0.4", true, "backend");
  AddWorkload(rs, "legacy", "legacy-client", "10.1.0.5", false, "legacy-client");
  AddService(rs, "backend", "10.96.0.10", {{"10.1.0.3", "shop/backend-v1"}, {"10.1.0.4", "shop/backend-v2"}});
  AddService(rs, "backend-v1", "10.96.0.11", {{"10.1.0.3", "shop/backend-v1"}});
  AddService(rs, "backend-v2", "10.96.0.12", {{"10.1.0.4", "shop/backend-v2"}});
  auto* route = rs.add_resources()->mutable_tcp_route();
  route->set_namespace_("shop");
  route->set_name("backend-split");
  auto* parent = route->add_parent_refs();
  parent->set_kind("Service");
  parent->set_name("backend");
  parent->set_port(80);
  auto* rule = route->add_rules();
  for (auto [name, weight] : {std::pair{"backend-v1", 90u}, std::pair{"backend-v2", 10u}}) {
    auto* b = rule->add_backend_refs();
    b->set_name(name);
    b->set_port(80);
    b->set_weight(weight);
  }
  in.traffic.push_back({"shop/frontend", "shop/backend-v1", "spiffe://cluster.local/ns/shop/sa/frontend", true, 1.0,
                        100.0, 0, 91, 9100, 0});
  in.traffic.push_back({"shop/frontend", "shop/backend-v2", "spiffe://cluster.local/ns/shop/sa/frontend", true, 0.1,
                        10.0, 0, 9, 900, 0});
  in.traffic.push_back({"unknown", "shop/backend-v1", "unknown", false, 0, 0, 0, 4, 100, 4});
  in.now_unix = 1700000000;
  return in;
}

}  // namespace zm::ctrl::console::testing
